//! How a delivery is settled with the queue, and how the job's outcome is written to the store.
//!
//! The queue's dead-letter rule counts receives, but many receives end for reasons that are not
//! the job's (the database was away, a worker was killed while polling, a duplicate arrived
//! while the real attempt ran). Those deliveries are *handed on*: the job goes back to the queue
//! as a fresh message (a receive count of 0) and this delivery is deleted. The job's own budget
//! is the number of attempts that really started, counted in its row; when it is spent, the
//! worker records the failure and moves the message to the dead-letter queue itself.

use std::future::Future;
use std::time::{Duration, Instant};

use anb_core::queue::Received;
use anb_core::store::StoreError;

use crate::job::JobContext;

/// Waits between tries of an end-of-job store write (a short database blip must not cost the
/// work done).
const STORE_RETRY_WAITS: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// One store or queue call may take this long before it counts as failed (a hung connection
/// must not hold a job, or a lease heartbeat, for ever).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Write an outcome to the store, retrying transient errors with backoff for at most `budget`
/// (the time the message's lease surely has left). Errors that will not heal are returned at once.
pub async fn persist<T, F, Fut>(budget: Duration, what: &str, mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + budget;
    let mut waits = STORE_RETRY_WAITS.iter();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(CALL_TIMEOUT.min(left.max(Duration::from_millis(100))), write()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !e.is_retryable() => return Err(e),
            Ok(Err(e)) => e,
            Err(_) => StoreError::Unavailable(format!("no answer within {CALL_TIMEOUT:?}").into()),
        };
        match waits.next() {
            Some(wait) if *wait < deadline.saturating_duration_since(Instant::now()) => {
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "Could not record {what}; retrying");
                tokio::time::sleep(*wait).await;
            }
            _ => return Err(error),
        }
    }
}

/// The delivery is done with: delete it. A failure only means it comes back, and the row
/// (already settled) makes that delivery a no-op.
pub async fn acknowledge(ctx: &JobContext, message: &Received) {
    if let Err(e) = ctx.backends.queue.delete(&message.receipt).await {
        tracing::warn!(message_id = %message.message_id, error = %e, "Could not delete a settled message; it will come back as a no-op");
    }
}

/// Hand the job on as a fresh message, visible after `delay`, and delete this delivery, so the
/// receive it cost is not charged to the job. The new message is sent before the old one is
/// deleted: a crash in between leaves a duplicate (which the row settles), never nothing. If the
/// send fails, this delivery itself comes back after `delay` (one receive spent, nothing lost).
pub async fn hand_on(ctx: &JobContext, message: &Received, delay: Duration) {
    let queue = &ctx.backends.queue;
    match queue.send_after(&message.body, delay).await {
        Ok(_) => acknowledge(ctx, message).await,
        Err(e) => {
            tracing::warn!(message_id = %message.message_id, error = %e, "Could not hand the job on; letting this delivery come back");
            if let Err(e) = queue.change_visibility(&message.receipt, delay).await {
                tracing::warn!(message_id = %message.message_id, error = %e, "Could not delay the delivery either; it comes back when its lease ends");
            }
        }
    }
}

/// Move the message to the dead-letter queue (the video's row already says `failed`, retryable):
/// `anb dlq redrive` brings it back. Without a dead-letter queue the message is deleted and the
/// row is what remains.
pub async fn dead_letter(ctx: &JobContext, message: &Received, delay_on_error: Duration) {
    let Some(dead) = &ctx.backends.dead_letters else {
        tracing::warn!(message_id = %message.message_id, "No dead-letter queue is configured; the job's failure stays in its row only");
        return acknowledge(ctx, message).await;
    };
    match dead.send(&message.body).await {
        Ok(_) => acknowledge(ctx, message).await,
        Err(e) => {
            tracing::warn!(message_id = %message.message_id, error = %e, "Could not dead-letter the job; it comes back later");
            if let Err(e) = ctx.backends.queue.change_visibility(&message.receipt, delay_on_error).await {
                tracing::warn!(message_id = %message.message_id, error = %e, "Could not delay the delivery either");
            }
        }
    }
}
