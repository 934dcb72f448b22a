//! The job queue: SQS in production, a queue in the database for the embedded default, with the
//! same semantics: at-least-once delivery, long-poll receive of up to N messages, a visibility
//! timeout per receive, visibility changes (lease extension, or 0 to hand a message back at
//! once), delete by receipt, a receive count, a dead-letter queue after a number of receives,
//! and an approximate depth.

mod embedded;
mod sqs;

use crate::{Cause, ErrorCode};
use std::time::Duration;

pub use embedded::EmbeddedQueue;
pub use sqs::SqsQueue;

/// The dead-letter rule of the original design: a message received this many times without
/// being deleted moves to the dead-letter queue on its next receive.
pub const MAX_RECEIVES: u32 = 3;

/// One received message. The receipt names this delivery: after the message was delivered
/// again, an older receipt can no longer extend or delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// When the message was first sent (milliseconds since the epoch), for queue-wait metrics.
    pub sent_at_ms: u64,
}

/// Approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and neither deleted nor visible again yet.
    pub in_flight: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt no longer names a delivery in flight: the lease expired (the message may be
    /// with another consumer now) or the message was deleted.
    #[error("the message's lease was lost")]
    LeaseLost,
    /// The queue service cannot be reached: retry later.
    #[error("the queue is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The queue refused the call (no such queue, access denied, a malformed request) or its
    /// table failed for good: retrying will not help, the web answers 500.
    #[error("queue error: {0}")]
    Other(#[source] Cause),
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::LeaseLost => ErrorCode::LeaseLost,
            QueueError::Unavailable(_) => ErrorCode::QueueUnavailable,
            QueueError::Other(_) => ErrorCode::QueueError,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

#[async_trait::async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Enqueue one message; returns its id.
    async fn send(&self, body: &str) -> Result<String, QueueError> {
        self.send_after(body, Duration::ZERO).await
    }

    /// Enqueue one message that becomes visible only after `delay` (at most [`MAX_DELAY`], as
    /// SQS's `DelaySeconds`); returns its id. A fresh message starts with a receive count of 0.
    async fn send_after(&self, body: &str, delay: Duration) -> Result<String, QueueError>;

    /// Up to `max` messages (at most 10, as SQS), waiting up to `wait` for the first one. Each
    /// stays invisible to other consumers for `visibility`.
    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>, QueueError>;

    /// Make the message invisible for `visibility` from now (zero: visible again at once).
    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;

    /// Acknowledge: the message is done and never delivered again.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;

    async fn depth(&self) -> Result<Depth, QueueError>;
}

/// The longest delay a sent message can have (SQS's limit for `DelaySeconds`).
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// The most messages one receive returns (SQS's limit).
pub const MAX_BATCH: usize = 10;

/// Move every message of `dead` back to `live` (`anb dlq redrive`), each sent before it is
/// deleted so a crash in between duplicates rather than loses. Returns how many moved; stops
/// when a receive comes back empty or after `limit` messages.
pub async fn redrive(dead: &dyn JobQueue, live: &dyn JobQueue, limit: usize) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < limit {
        let batch = dead.receive(MAX_BATCH.min(limit - moved), Duration::ZERO, Duration::from_secs(60)).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            live.send(&message.body).await?;
            dead.delete(&message.receipt).await?;
            moved += 1;
        }
    }
    Ok(moved)
}
