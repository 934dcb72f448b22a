//! The domain: players (users), their videos, and the public's votes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub city: String,
    pub country: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub city: String,
    pub country: String,
}

/// Where a video is in its life. Moves only forward: `pending → processing → completed | failed`,
/// with `processing → pending` when a transient failure hands the job back for a retry, and
/// `failed → processing` only for a failure that was transient (a dead-letter redrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl VideoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Pending => "pending",
            VideoStatus::Processing => "processing",
            VideoStatus::Completed => "completed",
            VideoStatus::Failed => "failed",
        }
    }
}

impl TryFrom<String> for VideoStatus {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "pending" => VideoStatus::Pending,
            "processing" => VideoStatus::Processing,
            "completed" => VideoStatus::Completed,
            "failed" => VideoStatus::Failed,
            _ => return Err(format!("unknown video status `{s}`")),
        })
    }
}

impl std::fmt::Display for VideoStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A video row with its vote count.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Video {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: VideoStatus,
    /// Blob key of the upload, like `uploads/{id}.mp4`.
    pub original_key: String,
    /// Bytes of the upload; `None` while a direct upload has not been confirmed.
    pub original_size: Option<i64>,
    /// Blob key of the result, set when completed.
    pub processed_key: Option<String>,
    /// Blob key of the poster (a JPEG still), when the pipeline made one.
    pub poster_key: Option<String>,
    /// Stable code of the last failure (`invalid-input`, `storage-unavailable`, ...).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Whether the last failure was transient (a retry may succeed).
    pub error_retryable: bool,
    /// Processing attempts started; also the fencing token of the current attempt.
    pub attempts: i32,
    /// `attempts` when the video last left `failed` (a redrive): the retry budget counts the
    /// attempts above it.
    pub attempts_base: i32,
    /// Output position over expected duration, 0 to 1, while processing.
    pub progress: f64,
    pub uploaded_at: OffsetDateTime,
    pub processed_at: Option<OffsetDateTime>,
    pub enqueued_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub votes: i64,
}

#[derive(Debug, Clone)]
pub struct NewVideo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub original_key: String,
    pub original_size: Option<i64>,
}

/// A completed video as the public sees it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PublicVideo {
    pub id: Uuid,
    pub title: String,
    pub processed_key: Option<String>,
    pub poster_key: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub city: String,
    pub country: String,
    pub votes: i64,
    pub uploaded_at: OffsetDateTime,
}

/// One player's line in the rankings.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RankingRow {
    pub user_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub city: String,
    pub country: String,
    pub votes: i64,
}

/// What a worker finds when it tries to start an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// Moved to `processing`; `attempt` fences every later write of this attempt.
    Started { attempt: i32, video: Box<Video> },
    /// Already completed: acknowledge the message, do no work.
    AlreadyCompleted,
    /// Failed for good (a permanent error): acknowledge, do no work.
    PermanentlyFailed,
    /// Another attempt is alive (its heartbeat is recent): this message is a duplicate.
    InProgress,
    /// No such video (deleted, or never existed).
    Missing,
}

/// A page request: 1-based page, bounded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub page_size: u32,
}

impl Page {
    pub const MAX_SIZE: u32 = 100;

    pub fn new(page: u32, page_size: u32) -> Self {
        Page { page: page.max(1), page_size: page_size.clamp(1, Self::MAX_SIZE) }
    }

    pub fn limit(self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}
