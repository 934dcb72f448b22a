//! API errors: a status code and a `{"detail": ...}` body, as the original service answers.
//! Validation errors are 422 with FastAPI's shape (`detail` is a list of `{loc, msg, type}`),
//! so clients written against the original keep parsing them.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use anb_core::blob::StorageError;
use anb_core::queue::QueueError;
use anb_core::store::StoreError;

/// The body of every error but validation: `{"detail": "..."}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the error body
pub struct Detail {
    detail: String,
}

/// A validation error (422), as FastAPI shapes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ValidationDetail {
    detail: Vec<ValidationProblem>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ValidationProblem {
    /// `["body", field]` or `["query", parameter]`.
    loc: Vec<String>,
    msg: String,
    #[schema(example = "value_error")]
    r#type: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// 4xx with a message for the client.
    Client(StatusCode, String),
    /// 422: each problem as (field, message).
    Invalid(Vec<(String, String)>),
    /// 503: a dependency is down; the client may retry.
    Unavailable(String),
    /// 500: logged, not shown.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::Client(StatusCode::BAD_REQUEST, detail.into())
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Client(StatusCode::UNAUTHORIZED, detail.into())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Client(StatusCode::FORBIDDEN, detail.into())
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::Client(StatusCode::NOT_FOUND, detail.into())
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![(field.into(), message.into())])
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client(status, detail) => {
                let mut response = (status, axum::Json(json!({ "detail": detail }))).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert("www-authenticate", "Bearer".parse().expect("static header"));
                }
                response
            }
            ApiError::Invalid(problems) => {
                let detail: Vec<_> = problems
                    .into_iter()
                    .map(|(field, msg)| json!({ "loc": ["body", field], "msg": msg, "type": "value_error" }))
                    .collect();
                (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "detail": detail }))).into_response()
            }
            ApiError::Unavailable(why) => {
                tracing::warn!(%why, "dependency unavailable");
                let body = json!({ "detail": "The service is temporarily unavailable; retry shortly." });
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")], axum::Json(body)).into_response()
            }
            ApiError::Internal(why) => {
                tracing::error!(%why, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "detail": "Internal server error" }))).into_response()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(key) => ApiError::not_found(format!("No object {key}")),
            e if e.is_retryable() => ApiError::Unavailable(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // Malformed JSON, a wrong content type and a missing field are all validation errors.
        ApiError::invalid("body", rejection.body_text())
    }
}
