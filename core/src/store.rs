//! The database store: users, videos and votes behind one trait, with one implementation whose
//! SQL runs on PostgreSQL and SQLite alike (see [`crate::db`]).
//!
//! Every status change is a conditional update that names the states it may leave, and every
//! write of a processing attempt carries the attempt number as a fencing token: a late or
//! duplicate writer finds no row to update instead of moving a video backwards.

use crate::{Cause, ErrorCode};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{is_transient, on_pool, Db};
use crate::model::{NewUser, NewVideo, Page, PublicVideo, RankingRow, StartOutcome, User, Video, VideoStatus};

/// Why a write was refused by the data's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    DuplicateEmail,
    AlreadyVoted,
    /// Votes go to completed videos only.
    NotCompleted,
    /// A player cannot vote for their own video.
    OwnVideo,
    /// A video with votes cannot be deleted.
    HasVotes,
    /// A foreign key points nowhere (a video for an unknown user, say).
    MissingReference,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or is overloaded: retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Any other database failure (a query or a constraint the code does not expect): a fault of
    /// ours, not retried.
    #[error("database error: {0}")]
    Other(#[source] Cause),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::NotFound => ErrorCode::NotFound,
            StoreError::Unavailable(_) => ErrorCode::DatabaseUnavailable,
            StoreError::Other(_) => ErrorCode::DatabaseError,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    match unique_constraint(db.constraint(), db.message()).as_deref() {
                        Some(VOTES_KEY) => return StoreError::Conflict(Conflict::AlreadyVoted),
                        Some(USERS_EMAIL_UNIQUE) => return StoreError::Conflict(Conflict::DuplicateEmail),
                        _ => {} // a constraint this code does not know: a plain database error
                    }
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => return StoreError::Conflict(Conflict::MissingReference),
                // SQLite reports an `ON DELETE RESTRICT` refusal with an extended code (1811,
                // SQLITE_CONSTRAINT_TRIGGER) that sqlx does not classify.
                _ if db.message().contains("FOREIGN KEY constraint failed") => {
                    return StoreError::Conflict(Conflict::MissingReference)
                }
                _ => {}
            }
        }
        if is_transient(&e) {
            StoreError::Unavailable(Cause::of(e))
        } else {
            StoreError::Other(Cause::of(e))
        }
    }
}

/// The unique constraints of the schema, by the names the migrations give them (PostgreSQL
/// names a primary key `{table}_pkey`).
const VOTES_KEY: &str = "votes_pkey";
const USERS_EMAIL_UNIQUE: &str = "users_email_unique";

/// The name of the unique constraint a violation broke. PostgreSQL gives it; SQLite only
/// writes it in its message: the index (`UNIQUE constraint failed: index 'users_email_unique'`),
/// or for a primary key the table's columns (`UNIQUE constraint failed: votes.video_id, ...`),
/// named here as PostgreSQL names it.
fn unique_constraint(constraint: Option<&str>, message: &str) -> Option<String> {
    if let Some(name) = constraint {
        return Some(name.to_owned());
    }
    let failed = message.strip_prefix("UNIQUE constraint failed: ")?;
    if let Some(index) = failed.strip_prefix("index '") {
        return index.split('\'').next().map(str::to_owned);
    }
    let table = failed.split('.').next()?;
    Some(format!("{table}_pkey"))
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// `Conflict(DuplicateEmail)` when the address (in any case) is taken.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    async fn create_video(&self, new: NewVideo) -> StoreResult<Video>;
    async fn video(&self, id: Uuid) -> StoreResult<Option<Video>>;
    /// A user's videos, newest first.
    async fn videos_of(&self, user_id: Uuid) -> StoreResult<Vec<Video>>;
    /// Delete and return the row (its blob keys are the caller's to remove).
    /// `Conflict(HasVotes)` when it has votes; `None` when there was no such video.
    async fn delete_video(&self, id: Uuid) -> StoreResult<Option<Video>>;

    /// A direct upload arrived: record its size. Only while `pending` and unconfirmed.
    async fn confirm_upload(&self, id: Uuid, size: i64) -> StoreResult<bool>;
    /// Direct uploads announced before `before` whose file was never confirmed: the sweep
    /// removes them (and their blobs).
    async fn abandoned_uploads(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Video>>;
    /// Delete an abandoned direct upload's row, only if it is still unconfirmed.
    async fn delete_abandoned_upload(&self, id: Uuid) -> StoreResult<bool>;
    /// The job message was sent.
    async fn mark_enqueued(&self, id: Uuid) -> StoreResult<()>;
    /// Confirmed uploads still `pending` and never enqueued, uploaded before `before`: the sweep
    /// re-enqueues them.
    async fn unqueued_videos(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>>;

    /// `processing` rows whose attempt has shown no sign of life since `before`, and that were
    /// not (re-)enqueued since then either: their message may be gone (dead-lettered after
    /// receives that were not the job's, or lost), so the sweep enqueues them again.
    async fn stale_processing(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>>;

    /// Start a processing attempt: `pending`, a `processing` row whose attempt has shown no sign
    /// of life (no heartbeat) for `stale_after` (a redelivery after a lost worker), or a `failed`
    /// whose failure was transient move to `processing`, counting the attempt. A `processing`
    /// row with a live attempt is `InProgress`: the message is a duplicate.
    async fn start_processing(&self, id: Uuid, stale_after: Duration) -> StoreResult<StartOutcome>;
    /// Heartbeat of the current attempt, with its progress when known (ignored when `attempt`
    /// is no longer current).
    async fn set_progress(&self, id: Uuid, attempt: i32, progress: Option<f64>) -> StoreResult<bool>;
    /// `processing → completed` for the current attempt.
    /// Record the attempt's output (and its poster, if it made one) as the video's.
    async fn complete(
        &self,
        id: Uuid,
        attempt: i32,
        processed_key: &str,
        poster_key: Option<&str>,
    ) -> StoreResult<bool>;
    /// `processing → failed` for the current attempt, with a stable code.
    async fn fail(&self, id: Uuid, attempt: i32, code: ErrorCode, message: &str, retryable: bool) -> StoreResult<bool>;
    /// `processing → pending` for the current attempt: a transient failure, the job will be retried.
    async fn retry_later(&self, id: Uuid, attempt: i32, code: ErrorCode, message: &str) -> StoreResult<bool>;

    /// Completed videos, newest first.
    async fn public_videos(&self, page: Page) -> StoreResult<Vec<PublicVideo>>;
    /// One vote per user per video, completed videos only, never the voter's own; returns the
    /// video's new total.
    async fn vote(&self, video_id: Uuid, user_id: Uuid) -> StoreResult<i64>;
    /// Players by votes on their completed videos (most first; ties by name, then id), and the
    /// number of ranked players.
    async fn rankings(&self, city: Option<&str>, page: Page) -> StoreResult<(Vec<RankingRow>, i64)>;

    async fn ping(&self) -> StoreResult<()>;
}

/// The one [`Store`] implementation, on PostgreSQL or SQLite.
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    pub fn new(db: Db) -> Self {
        SqlStore { db }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

const VIDEO_COLUMNS: &str = "v.id, v.user_id, v.title, v.description, v.status, v.original_key, v.original_size,
    v.processed_key, v.poster_key, v.error_code, v.error_message, v.error_retryable, v.attempts, v.attempts_base, v.progress,
    v.uploaded_at, v.processed_at, v.enqueued_at, v.updated_at,
    (SELECT count(*) FROM votes WHERE votes.video_id = v.id) AS votes";

fn select_videos(condition: &str) -> String {
    format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE {condition}")
}

const USER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, city, country, created_at";

/// Players ranked by votes on their completed videos. Players with a completed video and no
/// votes yet are ranked too (with 0), so a new player can find themself.
const RANKED_PLAYERS: &str = "SELECT u.id AS user_id, u.first_name, u.last_name, u.city, u.country,
        count(vo.video_id) AS votes
    FROM users u
    JOIN videos v ON v.user_id = u.id AND v.status = 'completed'
    LEFT JOIN votes vo ON vo.video_id = v.id
    WHERE ($1 IS NULL OR lower(u.city) = lower($1))
    GROUP BY u.id, u.first_name, u.last_name, u.city, u.country";

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {USER_COLUMNS}"
        );
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql)
            .bind(Uuid::new_v4())
            .bind(new.email.trim())
            .bind(&new.password_hash)
            .bind(&new.first_name)
            .bind(&new.last_name)
            .bind(&new.city)
            .bind(&new.country)
            .bind(now())
            .fetch_one(pool)
            .await?))
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1)");
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql).bind(email.trim()).fetch_optional(pool).await?))
    }

    async fn create_video(&self, new: NewVideo) -> StoreResult<Video> {
        let at = now();
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO videos (id, user_id, title, description, status, original_key, original_size,
                    uploaded_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7)",
            )
            .bind(new.id)
            .bind(new.user_id)
            .bind(&new.title)
            .bind(&new.description)
            .bind(&new.original_key)
            .bind(new.original_size)
            .bind(at)
            .execute(pool)
            .await?;
        });
        self.video(new.id).await?.ok_or(StoreError::NotFound)
    }

    async fn video(&self, id: Uuid) -> StoreResult<Option<Video>> {
        let sql = select_videos("v.id = $1");
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    async fn videos_of(&self, user_id: Uuid) -> StoreResult<Vec<Video>> {
        let sql = select_videos("v.user_id = $1 ORDER BY v.uploaded_at DESC, v.id");
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?))
    }

    async fn delete_video(&self, id: Uuid) -> StoreResult<Option<Video>> {
        let Some(video) = self.video(id).await? else { return Ok(None) };
        let deleted = on_pool!(&self.db, pool => sqlx::query("DELETE FROM videos WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match deleted {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(video)),
            // The votes' foreign key refuses: the video has votes.
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(Conflict::MissingReference) => Err(StoreError::Conflict(Conflict::HasVotes)),
                other => Err(other),
            },
        }
    }

    async fn confirm_upload(&self, id: Uuid, size: i64) -> StoreResult<bool> {
        on_pool!(&self.db, pool => Ok(sqlx::query(
            "UPDATE videos SET original_size = $2, updated_at = $3
             WHERE id = $1 AND status = 'pending' AND original_size IS NULL",
        )
        .bind(id)
        .bind(size)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected() == 1))
    }

    async fn abandoned_uploads(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Video>> {
        let sql = select_videos(
            "v.status = 'pending' AND v.original_size IS NULL AND v.uploaded_at < $1 ORDER BY v.uploaded_at LIMIT $2",
        );
        on_pool!(&self.db, pool => Ok(sqlx::query_as(&sql).bind(before).bind(limit).fetch_all(pool).await?))
    }

    async fn delete_abandoned_upload(&self, id: Uuid) -> StoreResult<bool> {
        on_pool!(&self.db, pool => Ok(sqlx::query(
            "DELETE FROM videos WHERE id = $1 AND status = 'pending' AND original_size IS NULL",
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected() == 1))
    }

    async fn mark_enqueued(&self, id: Uuid) -> StoreResult<()> {
        on_pool!(&self.db, pool => sqlx::query("UPDATE videos SET enqueued_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    async fn unqueued_videos(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>> {
        on_pool!(&self.db, pool => Ok(sqlx::query_scalar(
            "SELECT id FROM videos
             WHERE status = 'pending' AND enqueued_at IS NULL AND original_size IS NOT NULL AND uploaded_at < $1
             ORDER BY uploaded_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    async fn stale_processing(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>> {
        on_pool!(&self.db, pool => Ok(sqlx::query_scalar(
            "SELECT id FROM videos
             WHERE status = 'processing' AND updated_at < $1 AND (enqueued_at IS NULL OR enqueued_at < $1)
             ORDER BY updated_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    async fn start_processing(&self, id: Uuid, stale_after: Duration) -> StoreResult<StartOutcome> {
        let at = now();
        let stale_before = at - stale_after;
        let started: Option<i32> = on_pool!(&self.db, pool => sqlx::query_scalar(
            "UPDATE videos SET status = 'processing', attempts = attempts + 1, progress = 0, updated_at = $2,
                attempts_base = CASE WHEN status = 'failed' THEN attempts ELSE attempts_base END
             WHERE id = $1 AND original_size IS NOT NULL
               AND (status = 'pending'
                    OR (status = 'processing' AND updated_at < $3)
                    OR (status = 'failed' AND error_retryable))
             RETURNING attempts",
        )
        .bind(id)
        .bind(at)
        .bind(stale_before)
        .fetch_optional(pool)
        .await?);
        let video = self.video(id).await?;
        Ok(match (started, video) {
            (Some(attempt), Some(video)) => StartOutcome::Started { attempt, video: Box::new(video) },
            (_, None) => StartOutcome::Missing,
            (None, Some(v)) if v.status == VideoStatus::Completed => StartOutcome::AlreadyCompleted,
            (None, Some(v)) if v.status == VideoStatus::Failed => StartOutcome::PermanentlyFailed,
            (None, Some(v)) if v.status == VideoStatus::Processing => StartOutcome::InProgress,
            // Pending without a confirmed upload: nothing to process.
            (None, Some(_)) => StartOutcome::Missing,
        })
    }

    async fn set_progress(&self, id: Uuid, attempt: i32, progress: Option<f64>) -> StoreResult<bool> {
        on_pool!(&self.db, pool => Ok(sqlx::query(
            "UPDATE videos SET progress = coalesce($3, progress), updated_at = $4
             WHERE id = $1 AND attempts = $2 AND status = 'processing'",
        )
        .bind(id)
        .bind(attempt)
        .bind(progress.map(|p| p.clamp(0.0, 1.0)))
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected() == 1))
    }

    async fn complete(
        &self,
        id: Uuid,
        attempt: i32,
        processed_key: &str,
        poster_key: Option<&str>,
    ) -> StoreResult<bool> {
        let at = now();
        on_pool!(&self.db, pool => Ok(sqlx::query(
            "UPDATE videos SET status = 'completed', processed_key = $3, poster_key = $5, progress = 1, processed_at = $4,
                error_code = NULL, error_message = NULL, error_retryable = false, updated_at = $4
             WHERE id = $1 AND attempts = $2 AND status = 'processing'",
        )
        .bind(id)
        .bind(attempt)
        .bind(processed_key)
        .bind(at)
        .bind(poster_key)
        .execute(pool)
        .await?
        .rows_affected() == 1))
    }

    async fn fail(&self, id: Uuid, attempt: i32, code: ErrorCode, message: &str, retryable: bool) -> StoreResult<bool> {
        self.leave_processing(id, attempt, VideoStatus::Failed, code, message, retryable).await
    }

    async fn retry_later(&self, id: Uuid, attempt: i32, code: ErrorCode, message: &str) -> StoreResult<bool> {
        self.leave_processing(id, attempt, VideoStatus::Pending, code, message, true).await
    }

    async fn public_videos(&self, page: Page) -> StoreResult<Vec<PublicVideo>> {
        on_pool!(&self.db, pool => Ok(sqlx::query_as(
            "SELECT v.id, v.title, v.processed_key, v.poster_key, u.first_name, u.last_name, u.city, u.country, v.uploaded_at,
                (SELECT count(*) FROM votes WHERE votes.video_id = v.id) AS votes
             FROM videos v JOIN users u ON u.id = v.user_id
             WHERE v.status = 'completed'
             ORDER BY v.uploaded_at DESC, v.id
             LIMIT $1 OFFSET $2",
        )
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?))
    }

    async fn vote(&self, video_id: Uuid, user_id: Uuid) -> StoreResult<i64> {
        let inserted = on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO votes (video_id, user_id, created_at)
             SELECT id, $2, $3 FROM videos WHERE id = $1 AND status = 'completed' AND user_id <> $2",
        )
        .bind(video_id)
        .bind(user_id)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected());
        if inserted == 0 {
            return Err(match self.video(video_id).await? {
                None => StoreError::NotFound,
                Some(v) if v.status != VideoStatus::Completed => StoreError::Conflict(Conflict::NotCompleted),
                Some(_) => StoreError::Conflict(Conflict::OwnVideo),
            });
        }
        on_pool!(&self.db, pool => Ok(sqlx::query_scalar("SELECT count(*) FROM votes WHERE video_id = $1")
            .bind(video_id)
            .fetch_one(pool)
            .await?))
    }

    async fn rankings(&self, city: Option<&str>, page: Page) -> StoreResult<(Vec<RankingRow>, i64)> {
        let rows_sql = format!(
            "{RANKED_PLAYERS} ORDER BY votes DESC, lower(u.first_name), lower(u.last_name), u.id LIMIT $2 OFFSET $3"
        );
        let count_sql = format!("SELECT count(*) FROM ({RANKED_PLAYERS}) AS ranked");
        on_pool!(&self.db, pool => {
            let rows = sqlx::query_as(&rows_sql)
                .bind(city)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?;
            let total = sqlx::query_scalar(&count_sql).bind(city).fetch_one(pool).await?;
            Ok((rows, total))
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(self.db.ping().await?)
    }
}

impl SqlStore {
    async fn leave_processing(
        &self,
        id: Uuid,
        attempt: i32,
        to: VideoStatus,
        code: ErrorCode,
        message: &str,
        retryable: bool,
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => Ok(sqlx::query(
            "UPDATE videos SET status = $3, error_code = $4, error_message = $5, error_retryable = $6,
                updated_at = $7
             WHERE id = $1 AND attempts = $2 AND status = 'processing'",
        )
        .bind(id)
        .bind(attempt)
        .bind(to.as_str())
        .bind(code.as_str())
        .bind(message)
        .bind(retryable)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected() == 1))
    }
}

#[cfg(test)]
mod tests {
    use super::{unique_constraint, USERS_EMAIL_UNIQUE, VOTES_KEY};

    #[test]
    fn a_unique_violation_is_known_by_its_constraints_name_on_both_databases() {
        // PostgreSQL names the constraint.
        assert_eq!(unique_constraint(Some("votes_pkey"), "duplicate key value").as_deref(), Some(VOTES_KEY));
        // SQLite says it in its message: an index by name, a primary key by its columns.
        let email = "UNIQUE constraint failed: index 'users_email_unique'";
        assert_eq!(unique_constraint(None, email).as_deref(), Some(USERS_EMAIL_UNIQUE));
        let vote = "UNIQUE constraint failed: votes.video_id, votes.user_id";
        assert_eq!(unique_constraint(None, vote).as_deref(), Some(VOTES_KEY));
        assert_eq!(unique_constraint(None, "database is locked"), None);
    }

    /// A database failure keeps sqlx's own error as its source, behind one readable line.
    #[test]
    fn a_database_error_keeps_sqlxs_error_as_its_source() {
        use std::error::Error;
        let error = super::StoreError::from(sqlx::Error::ColumnNotFound("title".into()));
        assert!(matches!(error, super::StoreError::Other(_)), "{error:?}");
        assert!(error.to_string().starts_with("database error: "), "{error}");
        let cause = error.source().expect("the cause is kept");
        let sqlx = cause.source().and_then(|e| e.downcast_ref::<sqlx::Error>());
        assert!(matches!(sqlx, Some(sqlx::Error::ColumnNotFound(column)) if column == "title"), "{cause:?}");
    }
}
