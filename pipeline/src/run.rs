//! Running a built graph: the bus loop, cancellation, the stall watchdog, progress events, error
//! classification, and committing or aborting the output on every exit path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::admission;
use crate::error::{ErrorCode, PipelineError};
use crate::graph::{self, Graph};
use crate::io::{ByteSink, ByteSource};
use crate::shared::Shared;
use crate::stage::{BuildContext, Window};
use crate::Pipeline;

/// How often the runner wakes to check for cancellation, stalls and progress.
const TICK: Duration = Duration::from_millis(100);
/// How long the input demuxer may sit stopped without a stream before the run fails: long
/// enough for decodebin to expose the streams of a file the demuxer read to the end at once.
const SILENT_DEMUXER_GRACE: Duration = Duration::from_secs(2);
/// How long tearing a graph down may take before the runner gives up on it.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Cancels a run from another thread or task.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A snapshot of a running job.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Output written so far, as media time.
    pub position: Duration,
    /// Expected output duration (input duration cut to the window), once known.
    pub expected: Option<Duration>,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Progress {
    /// 0.0 to 1.0, once the expected duration is known.
    pub fn fraction(&self) -> Option<f64> {
        let expected = self.expected?.as_secs_f64();
        (expected > 0.0).then(|| (self.position.as_secs_f64() / expected).clamp(0.0, 1.0))
    }
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub input_size: u64,
    pub input_duration: Option<Duration>,
    pub output_duration: Duration,
    pub wall_time: Duration,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// The side outputs the stages published (a poster), to be stored beside the output.
    pub artifacts: Vec<crate::side_output::Artifact>,
}

impl RunReport {
    /// Seconds of output produced per second of wall time.
    pub fn realtime_factor(&self) -> f64 {
        self.output_duration.as_secs_f64() / self.wall_time.as_secs_f64().max(1e-9)
    }
}

/// A progress callback, called on the runner's thread.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Everything a run needs besides its endpoints.
pub struct RunOptions {
    pub ctx: BuildContext,
    /// Abort with `pipeline-stalled` when nothing moves (output position, bytes read or written)
    /// for this long.
    pub stall_timeout: Duration,
    pub cancel: CancelToken,
    /// Called on the runner's thread about every `progress_interval`, when something changed.
    pub on_progress: Option<ProgressFn>,
    pub progress_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            ctx: BuildContext::default(),
            stall_timeout: Duration::from_secs(60),
            cancel: CancelToken::default(),
            on_progress: None,
            progress_interval: Duration::from_millis(500),
        }
    }
}

/// The output's length as the input's header and the trim window give it.
fn expected_duration(admitted: &admission::Admitted, window: Option<Window>) -> Option<Duration> {
    let input = admitted.facts.as_ref()?.duration?;
    Some(match window {
        Some(w) => {
            let after_start = input.saturating_sub(w.start);
            w.max_duration.map_or(after_start, |max| after_start.min(max))
        }
        None => input,
    })
}

pub(crate) fn run_blocking(
    plan: Arc<Pipeline>,
    source: Arc<dyn ByteSource>,
    sink: Box<dyn ByteSink>,
    mut opts: RunOptions,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let input_size = source.size();
    if input_size == 0 {
        if let Err(e) = sink.abort() {
            tracing::warn!(error = %e, "Could not discard an output never written");
        }
        return Err(PipelineError::new(ErrorCode::InvalidInput, "the file is empty"));
    }
    let expected_window = plan.window();
    let limits = plan.input_limits();
    let admitted = match admission::admit(source.as_ref(), &limits) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            if let Err(e) = sink.abort() {
                tracing::warn!(error = %e, "Could not discard an output never written");
            }
            return Err(refusal);
        }
    };
    // Fresh for this run: a context reused across runs must not carry another run's artifacts.
    opts.ctx.artifacts = Default::default();
    opts.ctx.expected_duration = expected_duration(&admitted, expected_window);
    let Graph { pipeline, shared } = graph::build(plan, source, sink, &opts.ctx, &admitted)?;
    let span = tracing::debug_span!("pipeline_run", input_size);
    let _enter = span.enter();

    let budget = Budget { started, limits: &limits, window: expected_window };
    let outcome = drive(&pipeline, &shared, &mut opts, expected_window, &budget);
    let torn_down = teardown(pipeline);
    let sink = if torn_down {
        shared.sink.lock().unwrap().take()
    } else {
        shared.sink.try_lock().ok().and_then(|mut s| s.take())
    };
    let progress = snapshot(&shared, expected_window);

    let outcome = outcome.and_then(|()| check_complete(&shared, &progress));
    match outcome {
        Ok(()) => {
            let sink = sink.ok_or_else(|| PipelineError::new(ErrorCode::Internal, "the output sink was lost"))?;
            let bytes_written = sink
                .finish()
                .map_err(|e| PipelineError::new(ErrorCode::SinkFailed, format!("committing the output: {e}")))?;
            if let Some(f) = opts.on_progress.as_mut() {
                // Done: the expected duration is now known exactly (the container's duration
                // may include a slightly longer audio track).
                f(&Progress { expected: Some(progress.position), bytes_written, ..progress.clone() });
            }
            Ok(RunReport {
                input_size,
                input_duration: shared.input_duration(),
                output_duration: progress.position,
                wall_time: started.elapsed(),
                bytes_read: progress.bytes_read,
                bytes_written,
                artifacts: opts.ctx.artifacts.take(),
            })
        }
        Err(error) => {
            if let Some(sink) = sink {
                if let Err(e) = sink.abort() {
                    tracing::warn!(error = %e, "Could not discard a partial output");
                }
            }
            Err(error)
        }
    }
}

/// The wall-clock budget of a run, from the limits and what is known of the input so far.
struct Budget<'a> {
    started: Instant,
    limits: &'a anb_media::InputLimits,
    window: Option<crate::stage::Window>,
}

impl Budget<'_> {
    /// The output this run will write: the window cut to the input, the window alone while the
    /// input's duration is unknown, the input when there is no window.
    fn expected_output(&self, shared: &Shared) -> Duration {
        let input = shared.input_duration();
        let window = self.window.and_then(|w| w.max_duration);
        match (input, window) {
            (Some(i), Some(w)) => i.min(w),
            (Some(i), None) => i,
            (None, Some(w)) => w,
            (None, None) => Duration::from_secs(self.limits.max_duration_secs as u64),
        }
    }

    fn check(&self, shared: &Shared) -> Result<(), PipelineError> {
        let output = self.expected_output(shared);
        let allowed = self.limits.timeout(output, shared.pixel_rate());
        if self.started.elapsed() <= allowed {
            return Ok(());
        }
        Err(PipelineError::new(
            ErrorCode::JobTimeout,
            format!(
                "the run passed its time budget of {:.0} s (timeout_base_secs = {} plus timeout_secs_per_output_sec = {} for each of {:.1} s of output, scaled by the pixel rate)",
                allowed.as_secs_f64(),
                self.limits.timeout_base_secs,
                self.limits.timeout_secs_per_output_sec,
                output.as_secs_f64()
            ),
        ))
    }
}

fn drive(
    pipeline: &gst::Pipeline,
    shared: &Shared,
    opts: &mut RunOptions,
    window: Option<crate::stage::Window>,
    budget: &Budget,
) -> Result<(), PipelineError> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus.
        let message = bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]);
        return Err(explain(message, shared, || {
            PipelineError::new(ErrorCode::Internal, "the pipeline could not start")
        }));
    }

    let mut last_marks = marks(shared);
    let mut last_movement = Instant::now();
    let mut last_report = Instant::now();
    let mut last_progress: Option<Progress> = None;
    let mut demuxer_stopped_since: Option<Instant> = None;
    loop {
        if let Some(message) = bus.timed_pop(gst::ClockTime::from_nseconds(TICK.as_nanos() as u64)) {
            match message.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(err) => return Err(classify(err, shared)),
                gst::MessageView::Warning(w) => {
                    tracing::debug!(element = ?w.src().map(|s| s.path_string()), warning = %w.error(), "GStreamer warning");
                }
                _ => {}
            }
        }
        if opts.cancel.is_cancelled() {
            return Err(PipelineError::new(ErrorCode::Cancelled, "the run was cancelled"));
        }
        if shared.refused.load(Ordering::SeqCst) {
            return Err(shared
                .take_failure()
                .unwrap_or_else(|| PipelineError::new(ErrorCode::Internal, "the input was refused")));
        }
        budget.check(shared)?;
        if !shared.demuxer_gave_up() {
            demuxer_stopped_since = None;
        } else if demuxer_stopped_since.get_or_insert_with(Instant::now).elapsed() >= SILENT_DEMUXER_GRACE {
            let message = bus.pop_filtered(&[gst::MessageType::Error]);
            return Err(explain(message, shared, || {
                PipelineError::new(ErrorCode::InvalidInput, "the file is damaged: no stream could be read from it")
            }));
        }
        let now_marks = marks(shared);
        if now_marks != last_marks {
            last_marks = now_marks;
            last_movement = Instant::now();
        } else if last_movement.elapsed() >= opts.stall_timeout {
            return Err(PipelineError::new(
                ErrorCode::PipelineStalled,
                format!("no progress for {} s", opts.stall_timeout.as_secs_f64()),
            ));
        }
        if let Some(f) = opts.on_progress.as_mut() {
            if last_report.elapsed() >= opts.progress_interval {
                last_report = Instant::now();
                let progress = snapshot(shared, window);
                if last_progress.as_ref() != Some(&progress) {
                    f(&progress);
                    last_progress = Some(progress);
                }
            }
        }
    }
}

/// A file whose data ends before its index says it does (an upload cut off mid-way) demuxes
/// "successfully" up to the cut. Report it instead of delivering a silently short video.
fn check_complete(shared: &Shared, progress: &Progress) -> Result<(), PipelineError> {
    const TOLERANCE: Duration = Duration::from_millis(500);
    match progress.expected {
        Some(expected) if shared.read_past_end.load(Ordering::SeqCst) && progress.position + TOLERANCE < expected => {
            Err(PipelineError::new(
                ErrorCode::InvalidInput,
                format!(
                    "the file is truncated: its data ends at {:.1} s of {:.1} s",
                    progress.position.as_secs_f64(),
                    expected.as_secs_f64()
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn marks(shared: &Shared) -> (u64, u64, u64) {
    (
        shared.position_ns.load(Ordering::Relaxed),
        shared.bytes_read.load(Ordering::Relaxed),
        shared.bytes_written.load(Ordering::Relaxed),
    )
}

fn snapshot(shared: &Shared, window: Option<crate::stage::Window>) -> Progress {
    let expected = shared.input_duration().map(|input| match window {
        Some(w) => {
            let after_start = input.saturating_sub(w.start);
            w.max_duration.map_or(after_start, |max| after_start.min(max))
        }
        None => input,
    });
    Progress {
        position: shared.position(),
        expected,
        bytes_read: shared.bytes_read.load(Ordering::Relaxed),
        bytes_written: shared.bytes_written.load(Ordering::Relaxed),
    }
}

/// Set the graph to `Null` without letting a stuck element (a blocking stage, a hung read) hang
/// the caller: past the timeout the graph is abandoned and logged.
fn teardown(pipeline: gst::Pipeline) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = pipeline.set_state(gst::State::Null);
        let _ = tx.send(());
    });
    let done = rx.recv_timeout(TEARDOWN_TIMEOUT).is_ok();
    if !done {
        tracing::error!("A GStreamer graph did not stop within {} s; abandoning it", TEARDOWN_TIMEOUT.as_secs());
    }
    done
}

/// The error message taken from the bus, classified; else the failure a callback recorded; else
/// `fallback`.
fn explain(message: Option<gst::Message>, shared: &Shared, fallback: impl FnOnce() -> PipelineError) -> PipelineError {
    match message.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(err)) => classify(err, shared),
        _ => shared.take_failure().unwrap_or_else(fallback),
    }
}

/// Map a bus error to a code. A failure recorded by our own callbacks explains it best.
fn classify(err: &gst::message::Error, shared: &Shared) -> PipelineError {
    if let Some(failure) = shared.take_failure() {
        return failure;
    }
    let error = err.error();
    let element = err.src().map(|s| s.path_string().to_string());
    let details = err.debug().map(|d| d.to_string());
    let (code, message) = if let Some(kind) = error.kind::<gst::StreamError>() {
        use gst::StreamError::*;
        match kind {
            TypeNotFound | WrongType => (ErrorCode::InvalidInput, "not a video file (unrecognised format)".to_owned()),
            CodecNotFound => (ErrorCode::UnsupportedInput, format!("no decoder for this file: {error}")),
            Decode | Demux | Format | Decrypt | DecryptNokey => {
                (ErrorCode::InvalidInput, format!("the file is damaged or truncated: {error}"))
            }
            // A streaming failure ("Internal data stream error") before any video stream left
            // the demuxer: the demuxer failed on the data. Its own, more precise error may be
            // lost, since decodebin drops what an element posts while it is being plugged in
            // (see `Shared::demuxer_gave_up`); a failed read of the input would have been
            // recorded by the source and returned above.
            Failed if !shared.video_linked.load(std::sync::atomic::Ordering::SeqCst) => {
                (ErrorCode::InvalidInput, "the file is damaged: no stream could be read from it".to_owned())
            }
            _ => (ErrorCode::Internal, error.to_string()),
        }
    } else if let Some(gst::CoreError::MissingPlugin) = error.kind::<gst::CoreError>() {
        (ErrorCode::UnsupportedInput, format!("no decoder for this file: {error}"))
    } else {
        (ErrorCode::Internal, error.to_string())
    };
    tracing::debug!(code = %code, element = ?element, details = ?details, "Pipeline error");
    PipelineError::Run { code, message, element, debug: details, source: Some(error) }
}
