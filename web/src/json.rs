//! A JSON body extractor whose rejections (malformed JSON, wrong content type, missing or
//! mistyped fields) are 422 `{"detail": [...]}` like every other validation error, and whose
//! body is read with a cap: past [`crate::MAX_JSON_BODY_BYTES`] the answer is 413.
//!
//! A body over the cap is read on and dropped (up to [`DRAIN_BYTES`], for at most
//! [`DRAIN_FOR`]) before answering, as nginx's lingering close does: a client still sending
//! would otherwise see its connection reset instead of the 413 that explains why.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use http_body_util::BodyExt;

use crate::error::ApiError;
use crate::MAX_JSON_BODY_BYTES;

/// How much of an over-long body is read and dropped before the 413.
const DRAIN_BYTES: usize = 4 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(5);

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, mut body) = req.into_parts();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(body_error)?;
            let Ok(data) = frame.into_data() else { continue };
            if bytes.len() + data.len() > MAX_JSON_BODY_BYTES {
                drain(body, bytes.len() + data.len()).await;
                return Err(ApiError::too_large(format!(
                    "The request body is larger than {} KiB",
                    MAX_JSON_BODY_BYTES / 1024
                )));
            }
            bytes.extend_from_slice(&data);
        }
        // axum's own extractor checks the content type and parses.
        let axum::Json(value) =
            axum::Json::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(ApiJson(value))
    }
}

fn body_error(e: axum::Error) -> ApiError {
    if crate::error::is_body_timeout(&e) {
        return ApiError::body_timeout();
    }
    ApiError::bad_request(format!("The request body could not be read: {e}"))
}

async fn drain(mut body: Body, mut read: usize) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while read < DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}
