//! Direct uploads: a client announces a file, PUTs it straight to blob storage with a presigned
//! URL (S3, or the folder backend's signed `/files/...` link), then asks for it to be processed.
//! Large files never pass through the web tier.
//!
//! The announced video is a `pending` row with no size: the sweep never enqueues it and the
//! worker never starts it until `complete` has checked the object and recorded its size.
//! Announcements whose file never comes are removed by the sweep.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use anb_core::blob::{BlobKey, StorageError};
use anb_core::model::{NewVideo, VideoStatus};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::responses::{NoSuchVideo, NotYours, OverUploadLimit, Unauthorized};
use crate::shared::{enqueue, forget_own, owned, rfc3339, too_large, UploadResponse, VideoDetails, VideoId};
use crate::sniff::{video_container, SNIFF_LEN};
use crate::AppState;
use axum::routing::post;
use axum::Router;

/// Direct uploads: announce, then complete.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/videos/uploads", post(start)).route("/api/videos/{id}/complete", post(complete))
}

/// How long an upload URL stays valid: long enough for a large file on a slow link.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(3600);

/// Extensions kept from the client's file name in the object key (cosmetic: the worker reads
/// the container from the bytes).
const KNOWN_EXTENSIONS: [&str; 6] = ["mp4", "m4v", "mov", "webm", "mkv", "3gp"];

/// A file about to be uploaded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DirectUploadRequest {
    title: Option<String>,
    description: Option<String>,
    /// The exact size of the file in bytes; the upload URL accepts this size only.
    size: u64,
    /// The file's name, for its extension.
    filename: Option<String>,
}

/// Where and how to send the file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DirectUploadResponse {
    video_id: Uuid,
    user_id: Uuid,
    /// Send the file's bytes here with this method and these headers.
    upload_url: String,
    upload_method: &'static str,
    upload_headers: std::collections::BTreeMap<String, String>,
    /// When `upload_url` stops working (RFC 3339).
    expires_at: String,
    /// POST here once the upload has finished.
    complete_url: String,
}

/// What `complete` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompleteResponse {
    #[serde(flatten)]
    video: UploadResponse,
    /// `pending` once queued (or the video's status when it was already completed before).
    #[schema(value_type = String)]
    status: VideoStatus,
    size: i64,
}

/// Announce a file and get a presigned URL to upload it to directly.
#[utoipa::path(post, path = "/api/videos/uploads", tag = "videos", security(("bearer" = [])),
    request_body = DirectUploadRequest, responses(
    (status = 201, description = "PUT the file to upload_url, then POST complete_url", body = DirectUploadResponse),
    Unauthorized,
    OverUploadLimit,
    (status = 422, description = "Missing or invalid fields", body = crate::error::ValidationDetail),
))]
pub async fn start(
    State(state): State<AppState>,
    AuthUser(user_id): AuthUser,
    ApiJson(request): ApiJson<DirectUploadRequest>,
) -> ApiResult<(StatusCode, Json<DirectUploadResponse>)> {
    let mut problems = Vec::new();
    let details = VideoDetails::check(request.title, request.description, &mut problems);
    if request.size == 0 {
        problems.push(("size".into(), "Input should be greater than 0".into()));
    }
    let Some(details) = details.filter(|_| problems.is_empty()) else { return Err(ApiError::Invalid(problems)) };
    if request.size > state.max_upload_bytes {
        return Err(too_large(state.max_upload_bytes));
    }
    let video_id = Uuid::new_v4();
    let key = anb_core::job::upload_key(video_id, extension(request.filename.as_deref()));
    let expires_at = OffsetDateTime::from(SystemTime::now() + UPLOAD_URL_TTL);
    let put = state.backends.blobs.presign_put(&key, request.size, UPLOAD_URL_TTL).await?;
    state
        .backends
        .store
        .create_video(NewVideo {
            id: video_id,
            user_id,
            title: details.title,
            description: details.description,
            original_key: key.as_str().to_string(),
            original_size: None,
        })
        .await?;
    forget_own(&state, user_id, Some(video_id));
    Ok((
        StatusCode::CREATED,
        Json(DirectUploadResponse {
            video_id,
            user_id,
            upload_url: put.url,
            upload_method: "PUT",
            upload_headers: put.headers.into_iter().collect(),
            expires_at: rfc3339(expires_at),
            complete_url: format!("/api/videos/{video_id}/complete"),
        }),
    ))
}

/// The file of a direct upload has been sent: check it and queue the video. Calling it again
/// for a video already queued answers the same.
#[utoipa::path(post, path = "/api/videos/{id}/complete", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video")), responses(
    (status = 200, description = "Checked and queued", body = CompleteResponse),
    (status = 400, description = "No file uploaded yet, or not a video (the upload URL may be used again)", body = crate::error::Detail),
    NotYours,
    NoSuchVideo,
    OverUploadLimit,
))]
pub async fn complete(
    State(state): State<AppState>,
    AuthUser(user_id): AuthUser,
    VideoId(id): VideoId,
) -> ApiResult<Json<CompleteResponse>> {
    let video = owned(&state, id, user_id).await?;
    let answer =
        |status, size| Json(CompleteResponse { video: UploadResponse { video_id: video.id, user_id }, status, size });
    if let Some(size) = video.original_size {
        return Ok(answer(video.status, size)); // already confirmed: the same answer again
    }
    let key = BlobKey::new(video.original_key.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let reader = match state.backends.blobs.open(&key).await {
        Ok(reader) => reader,
        Err(StorageError::NotFound(_)) => {
            return Err(ApiError::bad_request("The file has not been uploaded yet: PUT it to the upload URL first"))
        }
        Err(e) => return Err(e.into()),
    };
    let size = reader.size();
    // A bad file is removed, so nothing unchecked is ever processed; the row stays, so the
    // client can PUT the right file while its URL is valid and complete again.
    let refuse = |error: ApiError| async {
        if let Err(e) = state.backends.blobs.delete(&key).await {
            tracing::warn!(%key, error = %e, "could not remove a refused direct upload");
        }
        Err(error)
    };
    if size > state.max_upload_bytes {
        return refuse(too_large(state.max_upload_bytes)).await;
    }
    let head = reader.read_at(0, SNIFF_LEN).await?;
    if let Err(refusal) = video_container(&head) {
        return refuse(refusal).await;
    }
    let size = size as i64;
    let confirmed = state.backends.store.confirm_upload(video.id, size).await?;
    forget_own(&state, user_id, Some(video.id));
    if !confirmed {
        // Another `complete` got there first (or the video is gone): answer with what is stored.
        let now = owned(&state, id, user_id).await?;
        return Ok(answer(now.status, now.original_size.unwrap_or(size)));
    }
    state.metrics.upload(size as u64);
    enqueue(&state, video.id).await;
    Ok(answer(VideoStatus::Pending, size))
}

/// The object key's extension: the client's, when it names a video container (as one of ours,
/// so no text of the client's reaches the key).
fn extension(filename: Option<&str>) -> &'static str {
    let ext = filename.and_then(|name| name.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase());
    KNOWN_EXTENSIONS.into_iter().find(|known| ext.as_deref() == Some(known)).unwrap_or("bin")
}

#[cfg(test)]
mod tests {
    use super::extension;

    #[test]
    fn the_key_keeps_a_video_extension_only() {
        assert_eq!(extension(Some("Final Game.MOV")), "mov");
        assert_eq!(extension(Some("clip.mp4")), "mp4");
        assert_eq!(extension(Some("../../etc/passwd")), "bin");
        assert_eq!(extension(Some("x.mp4/evil")), "bin");
        assert_eq!(extension(None), "bin");
    }
}
