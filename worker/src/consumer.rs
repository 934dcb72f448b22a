//! The consumer loop: receive at most as many messages as there are free job slots (never
//! prefetching beyond capacity), run each in its own task, and on shutdown stop receiving, give
//! running jobs the grace period, then cancel what is left and hand its messages back at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anb_core::queue::MAX_BATCH;
use anb_pipeline::CancelToken;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::job::{handle, JobContext, Outcome};
use crate::protection::ScaleInProtection;

/// The longest long poll (SQS's limit); shutdown interrupts it.
const RECEIVE_WAIT: Duration = Duration::from_secs(20);
/// Pause after a failed receive (the queue is down), so the loop does not spin.
const RECEIVE_BACKOFF: Duration = Duration::from_secs(2);
/// After cancelling at the end of the grace period, how long to wait for the pipelines to tear down.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

pub struct Worker {
    ctx: Arc<JobContext>,
    protection: ScaleInProtection,
}

/// What a worker did before it stopped (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub outcomes: Vec<Outcome>,
}

impl Worker {
    pub fn new(ctx: JobContext, protection: ScaleInProtection) -> Self {
        Worker { ctx: Arc::new(ctx), protection }
    }

    /// Run until `shutdown` resolves; then drain as described above.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Summary {
        let slots = Arc::new(Semaphore::new(self.ctx.options.concurrency));
        let abort = CancelToken::default();
        let mut jobs: JoinSet<Outcome> = JoinSet::new();
        let mut summary = Summary::default();
        tokio::pin!(shutdown);
        loop {
            // Wait for a free slot; meanwhile collect finished jobs.
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                _ = &mut shutdown => break,
            };
            while let Some(done) = jobs.try_join_next() {
                summary.outcomes.extend(done.ok());
            }
            // Only this loop takes slots, so the free count can only grow until we take them.
            let free = (slots.available_permits() + 1).min(MAX_BATCH);
            let received = tokio::select! {
                r = self.ctx.backends.queue.receive(free, RECEIVE_WAIT, self.ctx.options.visibility) => r,
                _ = &mut shutdown => break,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed; retrying");
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(RECEIVE_BACKOFF) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            };
            let mut permit = Some(permit);
            for message in messages {
                let slot = permit.take().unwrap_or_else(|| slots.clone().try_acquire_owned().expect("counted as free"));
                let (ctx, abort, protection) = (self.ctx.clone(), abort.clone(), self.protection.clone());
                jobs.spawn(async move {
                    ctx.metrics.job_started();
                    // Renewed at every job start, so a busy task stays protected.
                    protection.set(true).await;
                    let outcome = handle(&ctx, message, &abort).await;
                    if ctx.metrics.job_ended() == 0 {
                        protection.set(false).await;
                    }
                    drop(slot);
                    outcome
                });
            }
        }
        tracing::info!(
            running = jobs.len(),
            grace_secs = self.ctx.options.shutdown_grace.as_secs(),
            "stopped receiving"
        );
        let drained = tokio::time::timeout(self.ctx.options.shutdown_grace, async {
            while let Some(done) = jobs.join_next().await {
                summary.outcomes.extend(done.ok());
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(running = jobs.len(), "grace period over: cancelling and handing the messages back");
            abort.cancel();
            let _ = tokio::time::timeout(CANCEL_WAIT, async {
                while let Some(done) = jobs.join_next().await {
                    summary.outcomes.extend(done.ok());
                }
            })
            .await;
        }
        summary
    }
}
