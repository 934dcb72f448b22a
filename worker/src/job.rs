//! One job: a queue message for a video, taken from `pending` to `completed` or `failed`, or
//! handed on for a retry. The message is deleted only once the outcome is recorded, so a
//! worker that dies at any point loses nothing: the message comes back and another worker
//! finishes the job (the attempt number fences the dead worker's late writes). A delivery that
//! meets a live attempt is delayed, never deleted; receives that end for reasons that are not
//! the job's are not charged to it (see [`crate::settle`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anb_core::backends::Backends;
use anb_core::blob::{BlobKey, StorageError};
use anb_core::job::{poster_key, processed_key, JobMessage};
use anb_core::model::StartOutcome;
use anb_core::queue::{QueueError, Received};
use anb_core::store::StoreError;
use anb_pipeline::{CancelToken, ErrorCode, Pipeline, PipelineError, Progress, RunOptions, RunReport};
use tracing::Instrument;
use uuid::Uuid;

use crate::adapters::{BlobSink, BlobSource};
use crate::lease::{hold_lease, LeaseEnd};
use crate::settle::{acknowledge, dead_letter, hand_on, persist, CALL_TIMEOUT};
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
    Failed(ErrorCode),
    /// A transient failure with its code (the job's, or the store's when the outcome could not
    /// be recorded): the job handed on for another attempt.
    Retry(ErrorCode),
    /// A transient failure on the job's last allowed attempt: recorded as the video's failure
    /// (retryable) and the message moved to the dead-letter queue.
    DeadLettered(ErrorCode),
    /// A duplicate delivery while another attempt is alive: handed on, to come back once that
    /// attempt would look dead.
    Deferred,
    /// A redelivery (its previous receiver vanished): handed on as a fresh message.
    Renewed,
    /// Nothing to do (unknown or deleted video, already completed, malformed message).
    Skipped(&'static str),
    /// Stopped by shutdown: message visible again at once.
    Released,
    /// Another worker holds the message now; this one touches nothing.
    LeaseLost,
    /// The run finished, but a newer attempt owns the video (or it was deleted): its output was
    /// removed, the message acknowledged.
    Superseded,
}

impl Outcome {
    pub fn label(&self) -> &str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retry",
            Outcome::DeadLettered(_) => "dead-lettered",
            Outcome::Deferred => "deferred",
            Outcome::Renewed => "renewed",
            Outcome::Skipped(_) => "skipped",
            Outcome::Released => "released",
            Outcome::LeaseLost => "lease-lost",
            Outcome::Superseded => "superseded",
        }
    }

    /// The failure's code, if the outcome is a failure.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Outcome::Failed(code) | Outcome::Retry(code) | Outcome::DeadLettered(code) => Some(*code),
            _ => None,
        }
    }

    /// The failure's code as text, empty for other outcomes (a metrics label, a log field).
    pub fn code(&self) -> &'static str {
        self.error_code().map_or("", ErrorCode::as_str)
    }
}

/// The last code a video's attempts recorded, if any. None, or a code this version does not
/// know, reads as the attempts having died without a word.
fn last_code(stored: Option<&str>) -> ErrorCode {
    stored.and_then(|c| c.parse().ok()).unwrap_or(ErrorCode::WorkerLost)
}

/// Backoff before a transient failure's retry: the base, doubled per attempt, at most 5 minutes.
fn retry_delay(base: Duration, attempt: u32) -> Duration {
    (base * (1u32 << attempt.saturating_sub(1).min(5))).min(Duration::from_secs(300))
}

/// What went wrong, as a code and whether it can ever succeed.
struct Failure {
    code: ErrorCode,
    message: String,
    permanent: bool,
}

impl Failure {
    fn transient(code: ErrorCode, message: impl std::fmt::Display) -> Self {
        Failure { code, message: message.to_string(), permanent: false }
    }
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        let code = e.code();
        Failure { code, message: e.message(), permanent: code.is_client_fault() }
    }
}

/// Run one message to its outcome. `shutdown` cancels the pipeline when the worker stops.
pub async fn handle(ctx: &JobContext, message: Received, shutdown: &CancelToken) -> Outcome {
    // How long the message waited, sent to received (the web sends it before it answers).
    let queued_secs = queued_secs(message.sent_at_ms);
    let Some(job) = JobMessage::parse(&message.body) else {
        tracing::warn!(body = %message.body, "Dropping a malformed job message");
        acknowledge(ctx, &message).await;
        return Outcome::Skipped("malformed");
    };
    let video_id = job.video_id;
    // One span per job: every line logged for it, here and below, carries the video and, once
    // the row is taken, the attempt.
    let span = tracing::info_span!("job", %video_id, attempt = tracing::field::Empty);
    run(ctx, message, video_id, queued_secs, shutdown).instrument(span).await
}

async fn run(ctx: &JobContext, message: Received, video_id: Uuid, queued_secs: f64, shutdown: &CancelToken) -> Outcome {
    if message.receive_count > 1 {
        // A redelivery: the previous receiver died or lost its lease before settling it. That
        // says nothing about the job (its attempts are counted in the row), so the receive is
        // not charged to it: the job goes on as a fresh message.
        tracing::info!(%video_id, receive_count = message.receive_count, "Renewing a redelivered job message");
        hand_on(ctx, &message, Duration::ZERO).await;
        return Outcome::Renewed;
    }
    let store = &ctx.backends.store;
    let stale_after = ctx.options.stale_after();
    let (attempt, video) = match store.start_processing(video_id, stale_after).await {
        Ok(StartOutcome::Started { attempt, video }) => {
            tracing::Span::current().record("attempt", attempt);
            (attempt, video)
        }
        Ok(StartOutcome::Missing) => {
            tracing::info!(%video_id, "Dropping the job of an unknown or deleted video");
            acknowledge(ctx, &message).await;
            return Outcome::Skipped("missing");
        }
        Ok(StartOutcome::AlreadyCompleted | StartOutcome::PermanentlyFailed) => {
            acknowledge(ctx, &message).await;
            return Outcome::Skipped("done");
        }
        Ok(StartOutcome::InProgress) => {
            // Another attempt is alive. Come back when it would look dead: by then it has
            // completed (this delivery is then a no-op) or died (this one takes over).
            hand_on(ctx, &message, stale_after).await;
            return Outcome::Deferred;
        }
        Err(e) => {
            tracing::warn!(%video_id, error = %e, "Could not start the job; handing it on");
            hand_on(ctx, &message, ctx.options.retry_backoff).await;
            return Outcome::Retry(e.code());
        }
    };
    let used = attempt - video.attempts_base;
    if used > ctx.options.max_attempts as i32 {
        // The budget's attempts all started and none recorded an end: they died with their
        // worker (which a file built to exhaust memory does every time). Stop here.
        let code = last_code(video.error_code.as_deref());
        let failure = Failure::transient(code, format!("{} attempts started and none finished", used - 1));
        return give_up(ctx, &message, video_id, attempt, failure).await;
    }
    tracing::info!(%video_id, attempt, budget_used = used, queued_secs, "Processing");
    let started = Instant::now();
    let cancel = CancelToken::default();
    let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let run = async {
        let result = run_pipeline(ctx, video_id, attempt, &video.original_key, cancel.clone(), progress.clone()).await;
        let _ = done_tx.send(true);
        result
    };
    let lease = hold_lease(
        ctx,
        &message.receipt,
        video_id,
        attempt,
        progress.clone(),
        cancel.clone(),
        shutdown.clone(),
        done_rx,
    );
    let (result, lease_end) = tokio::join!(run, lease);

    // The pipeline's own time, so the rest of the job (pickup, database, storage) shows in logs.
    let pipeline_secs = result.as_ref().map_or(0.0, |report| report.wall_time.as_secs_f64());
    let outcome = match (result, lease_end) {
        (_, LeaseEnd::Lost) => Outcome::LeaseLost,
        (Ok(report), _) => complete(ctx, &message, video_id, attempt, &report).await,
        (Err(failure), LeaseEnd::Shutdown) if failure.code == ErrorCode::Cancelled => {
            // The grace period is short: one try, then the job goes back at once either way
            // (a row left `processing` is taken over once its heartbeat is stale).
            let released = store.retry_later(
                video_id,
                attempt,
                ErrorCode::WorkerShutdown,
                "the worker stopped; another will retry",
            );
            if let Err(e) = tokio::time::timeout(CALL_TIMEOUT, released)
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
            {
                tracing::warn!(%video_id, attempt, error = %e, "Could not record the release");
            }
            hand_on(ctx, &message, Duration::ZERO).await;
            Outcome::Released
        }
        (Err(failure), _) => record_failure(ctx, &message, video_id, attempt, used, failure).await,
    };
    ctx.metrics.job_finished(&outcome, started.elapsed(), message.sent_at_ms);
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(%video_id, attempt, outcome = outcome.label(), code = outcome.code(), secs, pipeline_secs, queued_secs, "Job done");
    outcome
}

/// Seconds since a message was sent (0 when the queue does not say).
fn queued_secs(sent_at_ms: u64) -> f64 {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    if sent_at_ms == 0 {
        0.0
    } else {
        now_ms.saturating_sub(sent_at_ms) as f64 / 1000.0
    }
}

async fn run_pipeline(
    ctx: &JobContext,
    video_id: Uuid,
    attempt: i32,
    original_key: &str,
    cancel: CancelToken,
    progress: Arc<Mutex<Option<Progress>>>,
) -> Result<RunReport, Failure> {
    let blobs = &ctx.backends.blobs;
    let input = BlobKey::new(original_key).map_err(|e| Failure {
        code: ErrorCode::InvalidInput,
        message: e.to_string(),
        permanent: true,
    })?;
    let source = BlobSource::open(blobs.as_ref(), &input).await.map_err(|e| match e {
        // The upload is gone: no retry will bring it back.
        StorageError::NotFound(_) => Failure { code: ErrorCode::SourceFailed, message: e.to_string(), permanent: true },
        e => Failure::transient(e.code(), e),
    })?;
    let output = processed_key(video_id, attempt);
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
    let key = processed_key(video_id, attempt);
    let poster = store_poster(ctx, video_id, attempt, report).await;
    let recorded = persist(ctx.options.settle_budget(), "the completion", || {
        ctx.backends.store.complete(video_id, attempt, key.as_str(), poster.as_ref().map(BlobKey::as_str))
    })
    .await;
    match recorded {
        Ok(true) => {
            // Earlier attempts of this video may have stored an output they could not record
            // (a completion lost to a blip, a run that died after storing): this one won.
            for earlier in 1..attempt {
                for key in [processed_key(video_id, earlier), poster_key(video_id, earlier)] {
                    if ctx.backends.blobs.exists(&key).await.unwrap_or(false) {
                        remove_output(ctx, video_id, &key).await;
                    }
                }
            }
            acknowledge(ctx, message).await;
            Outcome::Completed
        }
        Ok(false) => {
            // Not recorded by this call: an earlier try may have been (its answer lost in a
            // blip); otherwise a newer attempt owns the row or the video was deleted, and this
            // output must not outlive the attempt. Either way this message is done.
            let row = ctx.backends.store.video(video_id).await;
            let ours = matches!(&row, Ok(Some(v)) if v.processed_key.as_deref() == Some(key.as_str()));
            if !ours && row.is_ok() {
                remove_output(ctx, video_id, &key).await;
                if let Some(poster) = &poster {
                    remove_output(ctx, video_id, poster).await;
                }
            }
            acknowledge(ctx, message).await;
            if ours {
                Outcome::Completed
            } else {
                Outcome::Superseded
            }
        }
        Err(e) => {
            // The output is stored but not recorded, and the row still says `processing` with
            // this attempt's heartbeat stopped: come back once it looks dead, and a new attempt
            // redoes the job (its output overwrites this one).
            tracing::warn!(%video_id, attempt, error = %e, "Could not record the completion; handing the job on");
            hand_on(ctx, message, ctx.options.stale_after().max(ctx.options.retry_backoff)).await;
            Outcome::Retry(e.code())
        }
    }
}

/// Store the run's poster, if the pipeline made one, beside the output; its key, or `None`.
/// A poster that cannot be stored is left out rather than failing a finished video.
async fn store_poster(ctx: &JobContext, video_id: Uuid, attempt: i32, report: &RunReport) -> Option<BlobKey> {
    let artifact = report.artifacts.iter().find(|a| a.name == "poster")?;
    let key = poster_key(video_id, attempt);
    let body = Box::pin(tokio_stream::iter([Ok(bytes::Bytes::from(artifact.bytes.clone()))]));
    match ctx.backends.blobs.put_stream(&key, body).await {
        Ok(_) => Some(key),
        Err(e) => {
            tracing::warn!(%video_id, attempt, error = %e, "Could not store the poster; completing without it");
            None
        }
    }
}

/// Remove an output no row points at.
async fn remove_output(ctx: &JobContext, video_id: Uuid, key: &BlobKey) {
    match ctx.backends.blobs.delete(key).await {
        Ok(()) => tracing::info!(%video_id, %key, "Removed the output of a superseded attempt or a deleted video"),
        Err(e) => tracing::warn!(%video_id, %key, error = %e, "Could not remove an unrecorded output"),
    }
}

async fn record_failure(
    ctx: &JobContext,
    message: &Received,
    video_id: Uuid,
    attempt: i32,
    used: i32,
    failure: Failure,
) -> Outcome {
    let store = &ctx.backends.store;
    let short = truncate(&failure.message, 500);
    if failure.permanent {
        let recorded = persist(ctx.options.settle_budget(), "the failure", || {
            store.fail(video_id, attempt, failure.code, &short, false)
        })
        .await;
        return match recorded {
            Ok(_) => {
                acknowledge(ctx, message).await;
                Outcome::Failed(failure.code)
            }
            Err(e) => {
                // Unrecorded, the message must stay: a later attempt meets the same input and
                // records the same refusal.
                tracing::warn!(%video_id, attempt, error = %e, code = %failure.code, "Could not record a permanent failure; handing the job on");
                hand_on(ctx, message, ctx.options.stale_after().max(ctx.options.retry_backoff)).await;
                Outcome::Retry(e.code())
            }
        };
    }
    if used >= ctx.options.max_attempts as i32 {
        return give_up(ctx, message, video_id, attempt, failure).await;
    }
    let recorded = persist(ctx.options.settle_budget(), "the retry", || {
        store.retry_later(video_id, attempt, failure.code, &short)
    })
    .await;
    if let Err(e) = recorded {
        // The row stays `processing` with a stopped heartbeat; the next delivery takes it over
        // once it looks dead. Nothing is lost.
        tracing::warn!(%video_id, attempt, error = %e, "Could not record the retry");
    }
    hand_on(ctx, message, retry_delay(ctx.options.retry_backoff, used.max(1) as u32)).await;
    Outcome::Retry(failure.code)
}

/// The job's attempts are spent: record the last failure as the video's (retryable: a redrive
/// may still succeed) and move the message to the dead-letter queue.
async fn give_up(ctx: &JobContext, message: &Received, video_id: Uuid, attempt: i32, failure: Failure) -> Outcome {
    let short = truncate(&failure.message, 500);
    let store = &ctx.backends.store;
    match persist(ctx.options.settle_budget(), "the failure", || {
        store.fail(video_id, attempt, failure.code, &short, true)
    })
    .await
    {
        Ok(_) => {
            tracing::warn!(%video_id, attempt, code = %failure.code, "Out of attempts; dead-lettering the job");
            dead_letter(ctx, message, ctx.options.retry_backoff).await;
            Outcome::DeadLettered(failure.code)
        }
        Err(e) => {
            tracing::warn!(%video_id, attempt, error = %e, "Could not record the final failure; handing the job on");
            hand_on(ctx, message, ctx.options.stale_after().max(ctx.options.retry_backoff)).await;
            Outcome::Retry(e.code())
        }
    }
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

#[cfg(test)]
mod tests {
    use super::{last_code, ErrorCode};

    #[test]
    fn a_stored_code_reads_back_and_an_unknown_one_as_worker_lost() {
        assert_eq!(last_code(Some("sink-failed")), ErrorCode::SinkFailed);
        assert_eq!(last_code(Some("a-code-from-a-newer-version")), ErrorCode::WorkerLost);
        assert_eq!(last_code(None), ErrorCode::WorkerLost);
    }
}
