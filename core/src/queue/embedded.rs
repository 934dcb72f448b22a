//! The embedded queue (`ANB_QUEUE_URL=embedded`): messages are rows of `queue_messages` in the
//! application's own database, so `anb serve` needs no broker and a queued job survives a restart.
//!
//! A receive claims rows with one `UPDATE ... RETURNING` (on PostgreSQL over `SKIP LOCKED`, on
//! SQLite under its single writer), so any number of consumers, in one process or several, never
//! get the same delivery. A receipt is `{message id}:{receive count}`: once a message is delivered
//! again, the older receipt matches nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{Depth, JobQueue, QueueError, Received, MAX_BATCH, MAX_DELAY};
use crate::db::{is_transient, on_pool, Db};
use crate::Cause;

/// How often a waiting receive looks again when no sender in this process woke it.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
struct DeadLetter {
    queue: String,
    max_receives: u32,
}

#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Db,
    name: String,
    dead_letter: Option<DeadLetter>,
    /// Wakes receivers in this process as soon as a message is sent.
    sent: Arc<Notify>,
}

impl EmbeddedQueue {
    /// The queue `name` in `db` (whose migrations have run).
    pub fn new(db: Db, name: impl Into<String>) -> Self {
        EmbeddedQueue { db, name: name.into(), dead_letter: None, sent: Arc::new(Notify::new()) }
    }

    /// Messages received `max_receives` times move to the queue `dead` on their next receive,
    /// as SQS's redrive policy does.
    pub fn with_dead_letter(mut self, dead: impl Into<String>, max_receives: u32) -> Self {
        self.dead_letter = Some(DeadLetter { queue: dead.into(), max_receives });
        self
    }

    /// The dead-letter queue, as a queue of its own (to inspect or redrive it).
    pub fn dead_letter_queue(&self) -> Option<EmbeddedQueue> {
        self.dead_letter.as_ref().map(|d| EmbeddedQueue::new(self.db.clone(), d.queue.clone()))
    }

    async fn move_dead_letters(&self, now: i64) -> Result<(), QueueError> {
        let Some(dead) = &self.dead_letter else { return Ok(()) };
        on_pool!(&self.db, pool => sqlx::query(
            "UPDATE queue_messages SET queue = $2, visible_at = $3
             WHERE queue = $1 AND visible_at <= $3 AND receive_count >= $4",
        )
        .bind(&self.name)
        .bind(&dead.queue)
        .bind(now)
        .bind(dead.max_receives as i32)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected());
        Ok(())
    }

    async fn claim(&self, max: usize, now: i64, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let sql = format!(
            "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = $3
             WHERE visible_at <= $2 AND id IN (
                 SELECT id FROM queue_messages WHERE queue = $1 AND visible_at <= $2
                 ORDER BY visible_at, sent_at LIMIT $4 {})
             RETURNING id, body, receive_count, sent_at",
            self.db.dialect().skip_locked
        );
        let rows: Vec<(Uuid, String, i32, i64)> = on_pool!(&self.db, pool => sqlx::query_as(&sql)
            .bind(&self.name)
            .bind(now)
            .bind(now + millis(visibility))
            .bind(max as i64)
            .fetch_all(pool)
            .await
            .map_err(db_error)?);
        Ok(rows
            .into_iter()
            .map(|(id, body, count, sent_at)| Received {
                message_id: id.to_string(),
                receipt: format!("{id}:{count}"),
                body,
                receive_count: count as u32,
                sent_at_ms: sent_at as u64,
            })
            .collect())
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A receipt acts only on the delivery it names: no row touched means that delivery is over
/// (its lease expired, or the message was deleted), as SQS answers.
fn still_in_flight(rows_affected: u64) -> Result<(), QueueError> {
    if rows_affected == 0 {
        Err(QueueError::LeaseLost)
    } else {
        Ok(())
    }
}

fn db_error(e: sqlx::Error) -> QueueError {
    if is_transient(&e) {
        QueueError::Unavailable(Cause::of(e))
    } else {
        QueueError::Other(Cause::of(e))
    }
}

fn parse_receipt(receipt: &str) -> Result<(Uuid, i32), QueueError> {
    receipt
        .split_once(':')
        .and_then(|(id, count)| Some((Uuid::parse_str(id).ok()?, count.parse().ok()?)))
        .ok_or(QueueError::LeaseLost)
}

#[async_trait::async_trait]
impl JobQueue for EmbeddedQueue {
    async fn send_after(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let id = Uuid::new_v4();
        let now = now_ms();
        on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO queue_messages (id, queue, body, receive_count, visible_at, sent_at)
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(id)
        .bind(&self.name)
        .bind(body)
        .bind(now + millis(delay.min(MAX_DELAY)))
        .bind(now)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected());
        self.sent.notify_waiters();
        Ok(id.to_string())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let max = max.clamp(1, MAX_BATCH);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for a wake-up before looking, so a send in between is not missed.
            let sent = self.sent.notified();
            let now = now_ms();
            self.move_dead_letters(now).await?;
            let claimed = self.claim(max, now, visibility).await?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !claimed.is_empty() || remaining.is_zero() {
                return Ok(claimed);
            }
            let _ = tokio::time::timeout(remaining.min(POLL_INTERVAL), sent).await;
        }
    }

    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(receipt)?;
        let now = now_ms();
        // Only a delivery still in flight can be extended, as in SQS.
        let changed = on_pool!(&self.db, pool => sqlx::query(
            "UPDATE queue_messages SET visible_at = $4
             WHERE id = $1 AND queue = $2 AND receive_count = $3 AND visible_at > $5",
        )
        .bind(id)
        .bind(&self.name)
        .bind(count)
        .bind(now + millis(visibility))
        .bind(now)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected());
        still_in_flight(changed)?;
        if visibility.is_zero() {
            self.sent.notify_waiters();
        }
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(receipt)?;
        let deleted = on_pool!(&self.db, pool => sqlx::query(
            "DELETE FROM queue_messages WHERE id = $1 AND queue = $2 AND receive_count = $3",
        )
        .bind(id)
        .bind(&self.name)
        .bind(count)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected());
        still_in_flight(deleted)
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let (visible, in_flight): (i64, i64) = on_pool!(&self.db, pool => sqlx::query_as(
            "SELECT coalesce(sum(CASE WHEN visible_at <= $2 THEN 1 ELSE 0 END), 0),
                    coalesce(sum(CASE WHEN visible_at > $2 THEN 1 ELSE 0 END), 0)
             FROM queue_messages WHERE queue = $1",
        )
        .bind(&self.name)
        .bind(now_ms())
        .fetch_one(pool)
        .await
        .map_err(db_error)?);
        Ok(Depth { visible: visible as u64, in_flight: in_flight as u64 })
    }
}
