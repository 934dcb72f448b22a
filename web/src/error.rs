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
    /// 503: this task is at its capacity for the work asked (password hashing, requests at
    /// once); the client may retry in a second.
    Busy(String),
    /// 429: this client has used its rate; it may retry after the given seconds.
    RateLimited { detail: String, retry_after_secs: u64 },
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
    pub fn too_large(detail: impl Into<String>) -> Self {
        ApiError::Client(StatusCode::PAYLOAD_TOO_LARGE, detail.into())
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
            ApiError::Busy(why) => {
                // Debug only: under a flood every refused request would be a line.
                tracing::debug!(%why, "Shedding load");
                let body = json!({ "detail": "The service is busy; retry in a second." });
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], axum::Json(body)).into_response()
            }
            ApiError::RateLimited { detail, retry_after_secs } => {
                let retry_after = retry_after_secs.max(1).to_string();
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({ "detail": detail }))).into_response();
                response.headers_mut().insert("retry-after", retry_after.parse().expect("digits"));
                response
            }
            ApiError::Internal(why) => {
                tracing::error!(%why, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "detail": "Internal server error" })))
                    .into_response()
            }
        }
    }
}

/// Whether a body error is the body idle timeout firing (anywhere in its chain of sources).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl ApiError {
    /// 408: the body stopped arriving for longer than `ANB_BODY_IDLE_TIMEOUT_SECS`.
    pub fn body_timeout() -> Self {
        ApiError::Client(StatusCode::REQUEST_TIMEOUT, "The request body stopped arriving; nothing was stored".into())
    }
}

/// A backend's failure: 503 (retry after a while) when it is transient, else 500.
fn backend_failure(e: &dyn std::fmt::Display, retryable: bool) -> ApiError {
    if retryable {
        ApiError::Unavailable(e.to_string())
    } else {
        ApiError::Internal(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        backend_failure(&e, e.is_retryable())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(key) => ApiError::not_found(format!("No object {key}")),
            StorageError::AlreadyExists(key) => ApiError::Client(StatusCode::CONFLICT, format!("{key} exists already")),
            e => backend_failure(&e, e.is_retryable()),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        backend_failure(&e, e.is_retryable())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // A body over the limit is 413; malformed JSON, a wrong content type and a missing field
        // are all validation errors.
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(format!(
                "The request body is larger than {} KiB",
                crate::MAX_JSON_BODY_BYTES / 1024
            ));
        }
        ApiError::invalid("body", rejection.body_text())
    }
}
