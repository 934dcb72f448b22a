//! What the handler modules share: the caller's video, signed links, the job's sending, the
//! own-reads cache's keys, the checks of a video's text and the one timestamp format.

use std::time::Duration;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use anb_core::blob::BlobKey;
use anb_core::job::JobMessage;
use anb_core::model::Video;

use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Lines, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS};
use crate::AppState;

/// How long a presigned URL in a response stays valid.
pub const URL_TTL: Duration = Duration::from_secs(3600);

/// A video id from the path. Anything that is not a UUID is a video that does not exist (404),
/// answered before any query or cache lookup.
pub struct VideoId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for VideoId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| video_not_found())?;
        Uuid::parse_str(&id).map(VideoId).map_err(|_| video_not_found())
    }
}

pub fn video_not_found() -> ApiError {
    ApiError::not_found("Video not found")
}

/// The video, if it exists and belongs to `user_id`: 404 or 403 otherwise.
pub async fn owned(state: &AppState, id: Uuid, user_id: Uuid) -> ApiResult<Video> {
    let video = state.backends.store.video(id).await?.ok_or_else(video_not_found)?;
    if video.user_id != user_id {
        return Err(ApiError::forbidden("Not your video"));
    }
    Ok(video)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResponse {
    pub video_id: Uuid,
    pub user_id: Uuid,
}

/// A video's title and description, as checked for every kind of upload.
pub struct VideoDetails {
    pub title: String,
    pub description: Option<String>,
}

impl VideoDetails {
    /// The trimmed title and description, or `None` with the problems added to `problems`.
    pub fn check(
        title: Option<String>,
        description: Option<String>,
        problems: &mut Vec<(String, String)>,
    ) -> Option<Self> {
        let before = problems.len();
        let title = title.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        match &title {
            None => problems.push(("title".to_string(), "Field required".to_string())),
            Some(t) => fields::check("title", t, MAX_TITLE_CHARS, Lines::Single, problems),
        }
        if let Some(d) = &description {
            fields::check("description", d, MAX_DESCRIPTION_CHARS, Lines::Multi, problems);
        }
        (problems.len() == before).then(|| VideoDetails {
            title: title.expect("checked"),
            description: description.filter(|d| !d.trim().is_empty()),
        })
    }
}

pub fn too_large(max: u64) -> ApiError {
    ApiError::Client(StatusCode::PAYLOAD_TOO_LARGE, format!("File too large: the limit is {max} bytes"))
}

/// Send the job. A failure here loses nothing: the row stays `pending` without `enqueued_at`,
/// and the sweep sends it later.
pub async fn enqueue(state: &AppState, video_id: Uuid) {
    match state.backends.queue.send(&JobMessage::new(video_id).body()).await {
        Ok(_) => {
            if let Err(e) = state.backends.store.mark_enqueued(video_id).await {
                tracing::warn!(%video_id, error = %e, "enqueued, but could not record it (the sweep may send it twice)");
            }
        }
        Err(e) => tracing::warn!(%video_id, error = %e, "could not enqueue; the sweep will retry"),
    }
}

/// A presigned URL for a key, when there is one to give.
pub async fn presigned(state: &AppState, key: Option<&str>) -> ApiResult<Option<String>> {
    let Some(key) = key else { return Ok(None) };
    let key = BlobKey::new(key).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some(state.backends.blobs.presign_get(&key, URL_TTL).await?))
}

/// Every timestamp the API answers with.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

// A player's own reads are what an app polls while its video processes: each answer is kept
// `microcache::OWN_TTL` (a quarter second) per player, so polling costs the database at most
// four queries a second per player and route however often it comes. What the player changes
// through this process (upload, direct upload, completion, delete) is forgotten at once, so
// they see their own writes immediately; what others change (a worker finishing, votes) shows
// within the TTL. Keys hold the player's id: one player's answer is never another's.

pub fn list_key(user_id: Uuid) -> String {
    format!("{user_id}:list")
}

pub fn detail_key(user_id: Uuid, video_id: Uuid) -> String {
    format!("{user_id}:{video_id}")
}

/// Forget what a write of `user_id` changed: their list, and the video's detail when given.
pub fn forget_own(state: &AppState, user_id: Uuid, video_id: Option<Uuid>) {
    state.own_cache.invalidate(&list_key(user_id));
    if let Some(video_id) = video_id {
        state.own_cache.invalidate(&detail_key(user_id, video_id));
    }
}
