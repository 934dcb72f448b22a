//! A player's own videos: upload, list, detail, delete.

use std::time::Duration;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use anb_core::blob::{BlobKey, StorageError};
use anb_core::model::{NewVideo, Video, VideoStatus};
use anb_core::store::{Conflict, StoreError};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::fields::{MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS};
use crate::microcache::json_response;
use crate::responses::{NoSuchVideo, NotYours, OverUploadLimit, Unauthorized};
use crate::shared::{
    detail_key, enqueue, forget_own, list_key, owned, presigned, rfc3339, too_large, UploadResponse, VideoDetails,
    VideoId,
};
use crate::sniff::{video_container, SNIFF_LEN};
use crate::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

/// A player's own videos. Uploads enforce ANB_MAX_UPLOAD_BYTES themselves, as the bytes stream.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/videos/upload", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/api/videos", get(list_mine))
        .route("/api/videos/", get(list_mine))
        .route("/api/videos/{id}", get(detail).delete(delete))
}

/// Multipart framing and the text fields around the file, allowed on top of the file limit
/// when judging a request by its Content-Length.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// How long a refused upload's remaining bytes are read and dropped before answering.
const DRAIN_FOR: Duration = Duration::from_secs(10);

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it as a stream
pub struct UploadForm {
    /// The video file (MP4, MOV, WebM, MKV, AVI, MPEG-TS/PS, FLV).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    #[schema(max_length = 200)]
    title: String,
    #[schema(max_length = 5000)]
    description: Option<String>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if crate::error::is_body_timeout(&e) {
        return ApiError::body_timeout();
    }
    ApiError::bad_request(format!("Malformed upload: {}", e.body_text()))
}

/// Upload a clip; it is processed in the background.
#[utoipa::path(post, path = "/api/videos/upload", tag = "videos", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, description = "Stored and queued", body = UploadResponse),
    (status = 400, description = "Not a video, or a malformed form", body = crate::error::Detail),
    Unauthorized,
    OverUploadLimit,
    (status = 422, description = "Missing title or file", body = crate::error::ValidationDetail),
    (status = 429, description = "Two uploads of this account are already in progress", body = crate::error::Detail),
))]
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(user_id): AuthUser,
    headers: HeaderMap,
    mut form: Multipart,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    let _slot = state.throttle.upload(user_id)?;
    let max = state.max_upload_bytes;
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max + FORM_OVERHEAD) {
        // Refused before a byte is stored.
        drain(form).await;
        return Err(too_large(max));
    }
    let video_id = Uuid::new_v4();
    let mut title = None;
    let mut description = None;
    let mut stored: Option<(BlobKey, u64)> = None;
    let outcome: ApiResult<()> = async {
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            match field.name() {
                Some("file") if stored.is_none() => stored = Some(store_file(&state, video_id, field).await?),
                Some("file") => return Err(ApiError::bad_request("Only one file per upload")),
                Some("title") => title = Some(read_text(field, "title", MAX_TITLE_CHARS).await?),
                Some("description") => {
                    description = Some(read_text(field, "description", MAX_DESCRIPTION_CHARS).await?)
                }
                _ => {} // unknown fields are ignored, as the original does
            }
        }
        Ok(())
    }
    .await;
    if matches!(&outcome, Err(ApiError::Client(StatusCode::PAYLOAD_TOO_LARGE, _))) {
        drain(form).await;
    }
    let result = async {
        outcome?;
        let mut problems = Vec::new();
        let details = VideoDetails::check(title, description, &mut problems);
        let Some((key, size)) = stored.clone() else {
            problems.push(("file".into(), "Field required".into()));
            return Err(ApiError::Invalid(problems));
        };
        let Some(details) = details else { return Err(ApiError::Invalid(problems)) };
        let new = NewVideo {
            id: video_id,
            user_id,
            title: details.title,
            description: details.description,
            original_key: key.as_str().to_string(),
            original_size: Some(size as i64),
        };
        state.backends.store.create_video(new).await?;
        forget_own(&state, user_id, Some(video_id));
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Nothing half-made stays behind: the row was not created, so drop the bytes too.
        if let Some((key, _)) = stored {
            if let Err(del) = state.backends.blobs.delete(&key).await {
                tracing::warn!(%key, error = %del, "could not remove the blob of a refused upload");
            }
        }
        return Err(e);
    }
    state.metrics.upload(stored.map_or(0, |(_, size)| size));
    enqueue(&state, video_id).await;
    Ok((StatusCode::CREATED, Json(UploadResponse { video_id, user_id })))
}

/// A text field of the form, read a chunk at a time and refused (413) as soon as it holds more
/// bytes than `max_chars` characters can take: a 64 MiB title is never buffered.
async fn read_text(mut field: axum::extract::multipart::Field<'_>, name: &str, max_chars: usize) -> ApiResult<String> {
    let max_bytes = max_chars * 4;
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(ApiError::too_large(format!("The field `{name}` is longer than {max_chars} characters")));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::invalid(name, "String must be UTF-8"))
}

/// Read and discard what is left of a refused request for a bounded while, as nginx's lingering
/// close does: a client still sending would otherwise see its connection reset instead of the
/// 413 that explains why.
async fn drain(mut form: Multipart) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    })
    .await;
}

/// Stream the file field into blob storage under `uploads/{video_id}.{container}`, after
/// checking its first bytes really are a video container. Enforces the size limit as the bytes
/// arrive: past the limit, the put is aborted and the answer is 413.
async fn store_file(state: &AppState, video_id: Uuid, mut field: Field<'_>) -> ApiResult<(BlobKey, u64)> {
    let max = state.max_upload_bytes;
    let mut head = BytesMut::new();
    let mut held = Vec::new();
    while head.len() < SNIFF_LEN {
        match field.chunk().await.map_err(multipart_error)? {
            Some(chunk) => {
                head.extend_from_slice(&chunk);
                held.push(chunk);
            }
            None => break,
        }
    }
    let container = video_container(&head)?;
    let key = anb_core::job::upload_key(video_id, container);
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let put = {
        let (blobs, key) = (state.backends.blobs.clone(), key.clone());
        tokio::spawn(
            async move { blobs.put_stream(&key, Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))).await },
        )
    };
    let mut total = 0u64;
    let mut failure = None;
    let mut pending = held.into_iter();
    loop {
        let chunk = match pending.next() {
            Some(chunk) => chunk,
            None => match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(multipart_error(e));
                    break;
                }
            },
        };
        total += chunk.len() as u64;
        if total > max {
            failure = Some(too_large(max));
            break;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            break; // the put failed; its error is below
        }
    }
    if let Some(failure) = failure {
        // An error item makes the store discard what it has.
        let _ = tx.send(Err(std::io::Error::other("upload refused"))).await;
        drop(tx);
        // The put is expected to fail (it was told to discard); one that stored the bytes
        // anyway, or that failed otherwise, is worth a line.
        match put.await {
            Ok(Err(StorageError::Body(_))) => {}
            Ok(Ok(_)) => tracing::warn!(%key, "a refused upload was stored anyway"),
            Ok(Err(e)) => tracing::warn!(%key, error = %e, "a refused upload's put failed"),
            Err(e) => tracing::warn!(%key, error = %e, "a refused upload's put task failed"),
        }
        return Err(failure);
    }
    drop(tx);
    let size = put.await.map_err(|e| ApiError::Internal(e.to_string()))?.map_err(|e| match e {
        StorageError::Body(_) => ApiError::bad_request("The upload was interrupted"),
        e => e.into(),
    })?;
    Ok((key, size))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoSummary {
    video_id: Uuid,
    title: String,
    /// `pending`, `processing`, `completed` or `failed`.
    #[schema(value_type = String)]
    status: VideoStatus,
    uploaded_at: String,
    processed_at: Option<String>,
    processed_url: Option<String>,
    /// A JPEG still of the processed video (signed, expiring like `processed_url`); null when
    /// the video has none (processed before posters, or by a pipeline without the stage).
    poster_url: Option<String>,
    votes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoDetail {
    video_id: Uuid,
    title: String,
    description: Option<String>,
    /// `pending`, `processing`, `completed` or `failed`.
    #[schema(value_type = String)]
    status: VideoStatus,
    uploaded_at: String,
    processed_at: Option<String>,
    original_url: Option<String>,
    processed_url: Option<String>,
    /// A JPEG still of the processed video (signed, expiring like `processed_url`), or null.
    poster_url: Option<String>,
    votes: i64,
    /// Additive: 0..1 while processing.
    progress: f64,
    /// Additive: the stable code of the last failure.
    error_code: Option<String>,
    /// Additive: why the file was refused, for a person (`the picture is 7680×4320: more than
    /// the limit max_width = 4096`), when the failure is the file's (not retryable); null
    /// otherwise, so nothing about the platform's insides reaches a client.
    error_message: Option<String>,
}

fn processed_key(video: &Video) -> Option<&str> {
    (video.status == VideoStatus::Completed).then_some(video.processed_key.as_deref()).flatten()
}

fn poster_key(video: &Video) -> Option<&str> {
    (video.status == VideoStatus::Completed).then_some(video.poster_key.as_deref()).flatten()
}

/// The caller's videos, newest first.
#[utoipa::path(get, path = "/api/videos", tag = "videos", security(("bearer" = [])), responses(
    (status = 200, description = "The caller's videos", body = Vec<VideoSummary>),
    Unauthorized,
))]
pub async fn list_mine(State(state): State<AppState>, AuthUser(user_id): AuthUser) -> ApiResult<Response> {
    json_response(&state.own_cache, list_key(user_id), || async {
        let videos = state.backends.store.videos_of(user_id).await?;
        let mut out = Vec::with_capacity(videos.len());
        for v in videos {
            out.push(VideoSummary {
                processed_url: presigned(&state, processed_key(&v)).await?,
                poster_url: presigned(&state, poster_key(&v)).await?,
                video_id: v.id,
                title: v.title,
                status: v.status,
                uploaded_at: rfc3339(v.uploaded_at),
                processed_at: v.processed_at.map(rfc3339),
                votes: v.votes,
            });
        }
        Ok(out)
    })
    .await
}

/// One of the caller's videos, with expiring links.
#[utoipa::path(get, path = "/api/videos/{id}", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video")), responses(
    (status = 200, description = "The video", body = VideoDetail),
    NotYours,
    NoSuchVideo,
))]
pub async fn detail(
    State(state): State<AppState>,
    AuthUser(user_id): AuthUser,
    VideoId(video_id): VideoId,
) -> ApiResult<Response> {
    // A malformed id was refused by `VideoId`: no cache entry for it (a client cannot fill the
    // cache with junk keys).
    json_response(&state.own_cache, detail_key(user_id, video_id), || async {
        let v = owned(&state, video_id, user_id).await?;
        Ok(VideoDetail {
            original_url: presigned(&state, Some(&v.original_key)).await?,
            processed_url: presigned(&state, processed_key(&v)).await?,
            poster_url: presigned(&state, poster_key(&v)).await?,
            video_id: v.id,
            title: v.title,
            description: v.description,
            status: v.status,
            uploaded_at: rfc3339(v.uploaded_at),
            processed_at: v.processed_at.map(rfc3339),
            votes: v.votes,
            progress: v.progress,
            error_code: v.error_code,
            error_message: v.error_message.filter(|_| !v.error_retryable),
        })
    })
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    message: &'static str,
    video_id: Uuid,
}

/// Delete one of the caller's videos and its files.
#[utoipa::path(delete, path = "/api/videos/{id}", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video")), responses(
    (status = 200, description = "Deleted", body = DeleteResponse),
    (status = 400, description = "It has votes", body = crate::error::Detail),
    NotYours,
    NoSuchVideo,
))]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user_id): AuthUser,
    VideoId(id): VideoId,
) -> ApiResult<Json<DeleteResponse>> {
    let video = owned(&state, id, user_id).await?;
    let deleted = state.backends.store.delete_video(video.id).await.map_err(|e| match e {
        StoreError::Conflict(Conflict::HasVotes) => ApiError::bad_request("A video with votes cannot be deleted"),
        e => e.into(),
    })?;
    let Some(deleted) = deleted else { return Err(ApiError::not_found("Video not found")) };
    forget_own(&state, user_id, Some(deleted.id));
    // The row is gone; the blobs follow. A failure here leaves an orphan blob, never a row
    // pointing at nothing.
    for key in [Some(deleted.original_key.as_str()), deleted.processed_key.as_deref(), deleted.poster_key.as_deref()]
        .into_iter()
        .flatten()
    {
        if let Ok(key) = BlobKey::new(key) {
            if let Err(e) = state.backends.blobs.delete(&key).await {
                tracing::warn!(%key, error = %e, "could not delete the blob of a deleted video");
            }
        }
    }
    Ok(Json(DeleteResponse { message: "Video deleted", video_id: deleted.id }))
}
