//! One job: a queue message for a video, taken from `pending` to `completed` or `failed`, or
//! handed back for a retry. The message is deleted only once the outcome is recorded, so a
//! worker that dies at any point loses nothing: the message comes back and another worker
//! finishes the job (the attempt number fences the dead worker's late writes).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anb_core::backends::Backends;
use anb_core::blob::{BlobKey, StorageError};
use anb_core::model::StartOutcome;
use anb_core::queue::{QueueError, Received};
use anb_pipeline::{CancelToken, ErrorCode, Pipeline, PipelineError, Progress, RunOptions, RunReport};
use serde::Deserialize;
use uuid::Uuid;

use crate::adapters::{BlobSink, BlobSource};
use crate::lease::{hold_lease, LeaseEnd};
use crate::telemetry::WorkerMetrics;
use crate::WorkerOptions;

/// Everything a job needs, shared by all jobs of a worker.
pub struct JobContext {
    pub backends: Backends,
    pub pipeline: Arc<Pipeline>,
    pub options: WorkerOptions,
    pub metrics: Arc<WorkerMetrics>,
}

/// How a job ended, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// A permanent failure with its code: recorded, message deleted.
    Failed(String),
    /// A transient failure with its code: message handed back for another attempt (or, out of
    /// receives, recorded as failed and left for the dead-letter queue).
    Retry(String),
    /// Nothing to do (unknown or deleted video, already completed, malformed message).
    Skipped(&'static str),
    /// Stopped by shutdown: message visible again at once.
    Released,
    /// Another worker holds the message now; this one touches nothing.
    LeaseLost,
}

impl Outcome {
    pub fn label(&self) -> &str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retry",
            Outcome::Skipped(_) => "skipped",
            Outcome::Released => "released",
            Outcome::LeaseLost => "lease-lost",
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Outcome::Failed(code) | Outcome::Retry(code) => code,
            _ => "",
        }
    }
}

#[derive(Deserialize)]
struct JobMessage {
    video_id: Uuid,
}

/// The processed output's key: deterministic, so a retry overwrites instead of duplicating.
pub fn processed_key(video_id: Uuid) -> String {
    format!("processed/{video_id}.mp4")
}

/// Backoff before a transient failure's retry: the base, doubled per receive, at most 5 minutes.
fn retry_delay(base: Duration, receive_count: u32) -> Duration {
    (base * (1u32 << receive_count.saturating_sub(1).min(5))).min(Duration::from_secs(300))
}

/// What went wrong, as a code and whether it can ever succeed.
struct Failure {
    code: String,
    message: String,
    permanent: bool,
}

impl Failure {
    fn transient(code: &str, message: impl std::fmt::Display) -> Self {
        Failure { code: code.into(), message: message.to_string(), permanent: false }
    }
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        let code = e.code();
        Failure { code: code.as_str().into(), message: e.message(), permanent: code.is_client_fault() }
    }
}

/// Run one message to its outcome. `shutdown` cancels the pipeline when the worker stops.
pub async fn handle(ctx: &JobContext, message: Received, shutdown: &CancelToken) -> Outcome {
    let queue = &ctx.backends.queue;
    let Ok(job) = serde_json::from_str::<JobMessage>(&message.body) else {
        tracing::warn!(body = %message.body, "dropping a malformed job message");
        let _ = queue.delete(&message.receipt).await;
        return Outcome::Skipped("malformed");
    };
    let video_id = job.video_id;
    let store = &ctx.backends.store;
    // An attempt whose heartbeat stopped for half a lease is dead: its message came back.
    let stale_after = ctx.options.visibility / 2;
    let (attempt, original_key) = match store.start_processing(video_id, stale_after).await {
        Ok(StartOutcome::Started { attempt, video }) => (attempt, video.original_key),
        Ok(StartOutcome::Missing) => {
            tracing::info!(%video_id, "dropping the job of an unknown or deleted video");
            let _ = queue.delete(&message.receipt).await;
            return Outcome::Skipped("missing");
        }
        Ok(StartOutcome::AlreadyCompleted | StartOutcome::PermanentlyFailed | StartOutcome::InProgress) => {
            // A duplicate delivery: acknowledge without work. (If the live attempt's worker dies,
            // its own message comes back and finishes the job.)
            let _ = queue.delete(&message.receipt).await;
            return Outcome::Skipped("done");
        }
        Err(e) => {
            let _ = queue.change_visibility(&message.receipt, retry_delay(ctx.options.retry_backoff, message.receive_count)).await;
            return Outcome::Retry(e.code().into());
        }
    };
    tracing::info!(%video_id, attempt, receive_count = message.receive_count, "processing");
    let started = Instant::now();
    let cancel = CancelToken::default();
    let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let run = async {
        let result = run_pipeline(ctx, video_id, &original_key, cancel.clone(), progress.clone()).await;
        let _ = done_tx.send(true);
        result
    };
    let lease = hold_lease(ctx, &message.receipt, video_id, attempt, progress.clone(), cancel.clone(), shutdown.clone(), done_rx);
    let (result, lease_end) = tokio::join!(run, lease);

    let outcome = match (result, lease_end) {
        (_, LeaseEnd::Lost) => Outcome::LeaseLost,
        (Ok(report), _) => complete(ctx, &message, video_id, attempt, &report).await,
        (Err(failure), LeaseEnd::Shutdown) if failure.code == ErrorCode::Cancelled.as_str() => {
            let _ = store.retry_later(video_id, attempt, "worker-shutdown", "the worker stopped; another will retry").await;
            let _ = queue.change_visibility(&message.receipt, Duration::ZERO).await;
            Outcome::Released
        }
        (Err(failure), _) => record_failure(ctx, &message, video_id, attempt, failure).await,
    };
    ctx.metrics.job_finished(&outcome, started.elapsed(), message.sent_at_ms);
    tracing::info!(%video_id, attempt, outcome = outcome.label(), code = outcome.code(), secs = started.elapsed().as_secs_f64(), "job done");
    outcome
}

async fn run_pipeline(
    ctx: &JobContext,
    video_id: Uuid,
    original_key: &str,
    cancel: CancelToken,
    progress: Arc<Mutex<Option<Progress>>>,
) -> Result<RunReport, Failure> {
    let blobs = &ctx.backends.blobs;
    let input = BlobKey::new(original_key).map_err(|e| Failure { code: "invalid-input".into(), message: e.to_string(), permanent: true })?;
    let source = BlobSource::open(blobs.as_ref(), &input).await.map_err(|e| match e {
        // The upload is gone: no retry will bring it back.
        StorageError::NotFound(_) => Failure { code: ErrorCode::SourceFailed.as_str().into(), message: e.to_string(), permanent: true },
        e => Failure::transient(e.code(), e),
    })?;
    let output = BlobKey::new(processed_key(video_id)).expect("a valid key");
    let sink = BlobSink::start(blobs.clone(), output);
    let opts = RunOptions {
        ctx: ctx.options.build_context(),
        stall_timeout: ctx.options.stall_timeout,
        cancel,
        on_progress: Some(Box::new(move |p: &Progress| {
            *progress.lock().expect("progress") = Some(p.clone());
        })),
        ..RunOptions::default()
    };
    ctx.pipeline.run(Arc::new(source), Box::new(sink), opts).await.map_err(Failure::from)
}

async fn complete(ctx: &JobContext, message: &Received, video_id: Uuid, attempt: i32, report: &RunReport) -> Outcome {
    ctx.metrics.realtime_factor(report.realtime_factor());
    match ctx.backends.store.complete(video_id, attempt, &processed_key(video_id)).await {
        Ok(_) => {
            // Recorded (or a newer attempt owns the row; either way this message is done).
            let _ = ctx.backends.queue.delete(&message.receipt).await;
            Outcome::Completed
        }
        Err(e) => {
            // The output is stored but not recorded: retry; the next attempt overwrites it.
            let _ = ctx.backends.queue.change_visibility(&message.receipt, retry_delay(ctx.options.retry_backoff, message.receive_count)).await;
            Outcome::Retry(e.code().into())
        }
    }
}

async fn record_failure(ctx: &JobContext, message: &Received, video_id: Uuid, attempt: i32, failure: Failure) -> Outcome {
    let (store, queue) = (&ctx.backends.store, &ctx.backends.queue);
    let short = truncate(&failure.message, 500);
    if failure.permanent {
        let _ = store.fail(video_id, attempt, &failure.code, &short, false).await;
        let _ = queue.delete(&message.receipt).await;
        return Outcome::Failed(failure.code);
    }
    if message.receive_count >= ctx.options.max_receives {
        // Out of receives: the next receive moves the message to the dead-letter queue, and the
        // video shows the last code (a redrive can still retry it).
        let _ = store.fail(video_id, attempt, &failure.code, &short, true).await;
        let _ = queue.change_visibility(&message.receipt, Duration::ZERO).await;
    } else {
        let _ = store.retry_later(video_id, attempt, &failure.code, &short).await;
        let _ = queue.change_visibility(&message.receipt, retry_delay(ctx.options.retry_backoff, message.receive_count)).await;
    }
    Outcome::Retry(failure.code)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether a queue error means the lease is gone.
pub fn lease_lost(e: &QueueError) -> bool {
    matches!(e, QueueError::LeaseLost)
}
