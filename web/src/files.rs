//! `/files/{key}`: the folder backend's signed, expiring URLs: downloads, with single byte
//! ranges so browsers can seek in a video, and the PUTs of direct uploads.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use anb_core::blob::BlobKey;

use crate::error::{ApiError, ApiResult};
use crate::responses::BadLink;
use crate::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

/// The folder backend's signed links. The signed size bounds a direct upload's body; the
/// handler enforces it as bytes arrive.
pub fn router() -> Router<AppState> {
    Router::new().route("/files/{*key}", get(download).put(upload).layer(DefaultBodyLimit::disable()))
}

/// Bytes per read from the store while streaming a response.
const CHUNK: u64 = 256 * 1024;

/// A stored file behind an expiring signed link (folder storage), with byte ranges.
#[utoipa::path(get, path = "/files/{key}", tag = "files", params(
    ("key" = String, Path, description = "The object key"),
    ("expires" = u64, Query, description = "Unix time the link expires"),
    ("sig" = String, Query, description = "HMAC-SHA256 of key and expiry"),
), responses(
    (status = 200, description = "The file"),
    (status = 206, description = "The requested range"),
    BadLink,
    (status = 416, description = "Range not satisfiable"),
))]
pub async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let forbidden = || ApiError::forbidden("Invalid or expired link");
    let key = BlobKey::new(key).map_err(|_| forbidden())?;
    let expires = query.get("expires").and_then(|e| e.parse().ok()).ok_or_else(forbidden)?;
    let sig = query.get("sig").ok_or_else(forbidden)?;
    if !state.signer.verify(&key, expires, sig, SystemTime::now()) {
        return Err(forbidden());
    }
    let reader = state.backends.blobs.open(&key).await?;
    let size = reader.size();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|r| parse_range(r, size));
    let (start, end, status) = match range {
        None => (0, size, StatusCode::OK),
        Some(Some((start, end))) => (start, end, StatusCode::PARTIAL_CONTENT),
        Some(None) => {
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))])
                .into_response());
        }
    };
    let stream = futures_util::stream::unfold(start, move |at| {
        let reader = reader.clone();
        async move {
            if at >= end {
                return None;
            }
            let len = CHUNK.min(end - at) as usize;
            Some(match reader.read_at(at, len).await {
                Ok(bytes) if !bytes.is_empty() => (Ok(bytes.clone()), at + bytes.len() as u64),
                Ok(_) => (Err(std::io::Error::other("object shrank while being read")), end),
                Err(e) => (Err(std::io::Error::other(e.to_string())), end),
            })
        }
    });
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, key.content_type())
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        // The stored bytes are a user's: never let a browser guess them into HTML, and name
        // them as a file rather than a page of this site.
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_DISPOSITION, content_disposition(&key));
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
    }
    response.body(Body::from_stream(stream)).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `inline` (a video plays in the page) with the object's own file name, which keys keep to
/// safe characters (a uuid and an extension).
fn content_disposition(key: &BlobKey) -> String {
    let name = key.as_str().rsplit('/').next().unwrap_or("file");
    let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    format!("inline; filename=\"{safe}\"")
}

/// Store a direct upload's bytes behind a signed upload link (folder storage). The link names
/// the exact size: a body of any other length is refused and nothing is stored.
#[utoipa::path(put, path = "/files/{key}", tag = "files", params(
    ("key" = String, Path, description = "The object key"),
    ("expires" = u64, Query, description = "Unix time the link expires"),
    ("size" = u64, Query, description = "The only accepted body length"),
    ("sig" = String, Query, description = "HMAC-SHA256 of key, expiry and size"),
), responses(
    (status = 200, description = "Stored"),
    (status = 400, description = "The body's length is not the signed size", body = crate::error::Detail),
    BadLink,
    (status = 408, description = "The body stopped arriving; nothing was stored", body = crate::error::Detail),
    (status = 409, description = "The link was used already: a file is there", body = crate::error::Detail),
    (status = 413, description = "Longer than the signed size", body = crate::error::Detail),
))]
pub async fn upload(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let forbidden = || ApiError::forbidden("Invalid or expired link");
    let key = BlobKey::new(key).map_err(|_| forbidden())?;
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<u64>().ok()).ok_or_else(forbidden);
    let (expires, size) = (number("expires")?, number("size")?);
    let sig = query.get("sig").ok_or_else(forbidden)?;
    if !state.signer.verify_put(&key, expires, size, sig, SystemTime::now()) {
        return Err(forbidden());
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len != size) {
        return Err(ApiError::bad_request(format!("Content-Length must be {size}, as signed")));
    }
    // Count the bytes as they pass; a wrong total becomes an error item, which makes the store
    // discard what it has. Past the signed size the rest of the body is read and dropped (up to
    // a bound) before refusing: a client still sending then gets the 413 rather than a broken
    // pipe when the server stops reading mid-request.
    let counted = futures_util::stream::unfold(
        (body.into_data_stream(), 0u64, false),
        move |(mut data, mut total, ended)| async move {
            if ended {
                return None;
            }
            let item = match data.next().await {
                None if total < size => Err(LengthError::TooShort.into()),
                None => return None,
                Some(Err(e)) => Err(std::io::Error::other(e)),
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if total <= size {
                        return Some((Ok(chunk), (data, total, false)));
                    }
                    let mut extra = total - size;
                    while extra < DRAIN_AFTER_REFUSAL {
                        match data.next().await {
                            Some(Ok(more)) => extra += more.len() as u64,
                            _ => break,
                        }
                    }
                    Err(LengthError::TooLong.into())
                }
            };
            Some((item, (data, total, true)))
        },
    );
    // One complete PUT per link: a second one (or one after `complete`) finds the object there.
    match state.backends.blobs.put_stream_new(&key, Box::pin(counted)).await {
        Ok(_) => Ok(StatusCode::OK),
        Err(anb_core::blob::StorageError::AlreadyExists(_)) => Err(ApiError::Client(
            StatusCode::CONFLICT,
            "This upload link has been used: the file is already uploaded".into(),
        )),
        Err(anb_core::blob::StorageError::Body(e)) if crate::error::is_body_timeout(&e) => {
            Err(ApiError::body_timeout())
        }
        Err(anb_core::blob::StorageError::Body(e)) => {
            Err(match e.get_ref().and_then(|e| e.downcast_ref::<LengthError>()) {
                Some(LengthError::TooLong) => ApiError::Client(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The body is longer than the signed {size} bytes"),
                ),
                _ => ApiError::bad_request(format!("The body is not the signed {size} bytes")),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// How much of an over-long body is read (and dropped) before it is refused.
const DRAIN_AFTER_REFUSAL: u64 = 8 << 20;

/// Why an upload's body was refused mid-stream.
#[derive(Debug, thiserror::Error)]
enum LengthError {
    #[error("longer than signed")]
    TooLong,
    #[error("shorter than signed")]
    TooShort,
}

impl From<LengthError> for std::io::Error {
    fn from(e: LengthError) -> Self {
        std::io::Error::other(e)
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`, as a half-open range; `None` when it
/// cannot be satisfied. Several ranges are answered with the first.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.saturating_add(1).min(size)),
    };
    (start < end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
