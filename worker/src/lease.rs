//! The lease heartbeat: while the pipeline makes progress, keep the message invisible to other
//! workers by extending its visibility ahead of expiry. When progress stops for the stall
//! timeout, stop extending (the pipeline's own watchdog aborts the run with `pipeline-stalled`
//! and the message goes back). When the lease is lost, or the worker is shutting down, cancel
//! the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anb_pipeline::{CancelToken, Progress};
use tokio::sync::watch;
use uuid::Uuid;

use anb_core::queue::QueueError;

use crate::job::{lease_lost, JobContext};
use crate::settle::CALL_TIMEOUT;

/// How the lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Held to the end of the run.
    Held,
    /// Another worker may hold the message now.
    Lost,
    /// The worker is stopping; the run was cancelled.
    Shutdown,
}

const TICK: Duration = Duration::from_millis(200);
/// How often the video row's heartbeat (with progress) is written, at most.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// How often a held message's visibility is extended, for a lease window of `visibility`: every
/// third of the window, so two extensions can fail before the lease runs out. The queue's own
/// visibility timeout must exceed it (the deployment test checks the template).
pub fn extension_interval(visibility: Duration) -> Duration {
    (visibility / 3).max(TICK)
}

#[allow(clippy::too_many_arguments)]
pub async fn hold_lease(
    ctx: &JobContext,
    receipt: &str,
    video_id: Uuid,
    attempt: i32,
    progress: Arc<Mutex<Option<Progress>>>,
    cancel: CancelToken,
    shutdown: CancelToken,
    mut done: watch::Receiver<bool>,
) -> LeaseEnd {
    let visibility = ctx.options.visibility;
    let extend_every = extension_interval(visibility);
    let mut next_extend = Instant::now() + extend_every;
    // A hung call (a database or queue that stopped answering) must not hold the loop past the
    // next extension: each call gets half an extension interval.
    let call_timeout = (extend_every / 2).min(CALL_TIMEOUT);
    // Often enough that a live attempt never looks dead to `start_processing` (half a lease).
    let heartbeat_every = HEARTBEAT_EVERY.min(visibility / 4).max(TICK);
    let mut next_heartbeat = Instant::now() + heartbeat_every;
    let mut last_seen: Option<(Duration, u64, u64)> = None;
    let mut last_change = Instant::now();
    let mut end = LeaseEnd::Held;
    loop {
        if *done.borrow() {
            return end;
        }
        if end == LeaseEnd::Held && shutdown.is_cancelled() {
            cancel.cancel();
            end = LeaseEnd::Shutdown;
        }
        let snapshot = progress.lock().expect("progress").clone();
        if let Some(p) = &snapshot {
            let seen = (p.position, p.bytes_read, p.bytes_written);
            if last_seen != Some(seen) {
                last_seen = Some(seen);
                last_change = Instant::now();
            }
        }
        let now = Instant::now();
        if end == LeaseEnd::Held && now >= next_extend && last_change.elapsed() < ctx.options.stall_timeout {
            let extended =
                tokio::time::timeout(call_timeout, ctx.backends.queue.change_visibility(receipt, visibility)).await;
            match extended
                .unwrap_or_else(|_| Err(QueueError::Unavailable(format!("no answer within {call_timeout:?}").into())))
            {
                Ok(()) => next_extend = now + extend_every,
                Err(e) if lease_lost(&e) => {
                    tracing::warn!(%video_id, attempt, "lease lost; abandoning the run");
                    cancel.cancel();
                    end = LeaseEnd::Lost;
                }
                // A blip: try again on the next tick, well before the lease runs out.
                Err(e) => tracing::warn!(%video_id, error = %e, "could not extend the lease"),
            }
        }
        if now >= next_heartbeat && end == LeaseEnd::Held {
            next_heartbeat = now + heartbeat_every;
            let fraction = snapshot.as_ref().and_then(Progress::fraction);
            match tokio::time::timeout(call_timeout, ctx.backends.store.set_progress(video_id, attempt, fraction)).await
            {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    // A newer attempt owns the row (this one looked dead while the database was
                    // away): stop working for nothing. Its writes are fenced anyway.
                    tracing::warn!(%video_id, attempt, "Superseded by a newer attempt; abandoning the run");
                    cancel.cancel();
                    end = LeaseEnd::Lost;
                }
                Ok(Err(e)) => tracing::warn!(%video_id, attempt, error = %e, "Could not write the heartbeat"),
                Err(_) => tracing::warn!(%video_id, attempt, "The heartbeat write did not answer in time"),
            }
        }
        let _ = tokio::time::timeout(TICK, done.changed()).await;
    }
}
