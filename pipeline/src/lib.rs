//! anb-pipeline: the framework that turns `pipeline.toml` into a streaming GStreamer run.
//!
//! It knows nothing of S3, SQL or HTTP: a run reads a [`ByteSource`] and writes a [`ByteSink`].
//! Stages (in `anb-stages`) contribute elements; this crate owns decoding, routing, queues,
//! muxing, trimming, progress, cancellation, the stall watchdog and error reporting.

mod admission;
mod branch;
pub mod config;
pub mod elements;
mod endpoints;
pub mod error;
mod graph;
pub mod h264dec;
pub mod io;
pub mod registry;
mod run;
mod shared;
pub mod side_output;
pub mod stage;
mod window;

use std::sync::Arc;

pub use anb_media::{InputLimits, Refusal};
pub use config::{input_limits, overrides_from, LoadedStage, Override};
pub use error::{ConfigError, ErrorCode, PipelineError, Problem};
pub use io::{ByteSink, ByteSource, FileSink, FileSource};
pub use registry::Registry;
pub use run::{CancelToken, Progress, ProgressFn, RunOptions, RunReport};
pub use side_output::{Artifact, Artifacts};
pub use stage::{BuildContext, Role, SinkOptions, SourceOptions, Stage, Window};

/// Initialise GStreamer once per process. Cheap to call again.
/// Also registers the framework's own decoder (`anbh264dec`).
pub fn init() -> Result<(), PipelineError> {
    gst::init().map_err(|e| PipelineError::new(ErrorCode::Internal, format!("GStreamer did not start: {e}")))?;
    h264dec::register()
        .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("registering the H.264 decoder: {e}")))
}

/// A validated pipeline: stages in processing order.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<LoadedStage>,
}

/// The element chains a run builds, gst-launch style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphDescription {
    pub video: String,
    pub audio: Option<String>,
}

impl std::fmt::Display for GraphDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "video: {}", self.video)?;
        match &self.audio {
            Some(audio) => writeln!(f, "audio: {audio}"),
            None => writeln!(f, "audio: (dropped)"),
        }
    }
}

impl Pipeline {
    pub(crate) fn new(stages: Vec<LoadedStage>) -> Self {
        Pipeline { stages }
    }

    pub fn stages(&self) -> &[LoadedStage] {
        &self.stages
    }

    pub fn window(&self) -> Option<Window> {
        self.stages.iter().find_map(|s| s.stage.window())
    }

    pub fn keeps_audio(&self) -> bool {
        self.stages.iter().all(|s| s.stage.keeps_audio())
    }

    /// Whether the input's encoded sound (`audio`: the demuxer's caps) goes to the output as it
    /// is, with every stage's consent (see [`Stage::passes_encoded_audio`]).
    pub fn passes_encoded_audio(&self, audio: &gst::StructureRef, ctx: &BuildContext) -> bool {
        self.keeps_audio() && self.stages.iter().all(|s| s.stage.passes_encoded_audio(audio, ctx))
    }

    pub fn source_options(&self) -> SourceOptions {
        self.stages.iter().find_map(|s| s.stage.source_options()).unwrap_or_default()
    }

    /// The media limits every input of this pipeline is checked against.
    pub fn input_limits(&self) -> anb_media::InputLimits {
        self.stages.iter().find_map(|s| s.stage.input_limits()).unwrap_or_default()
    }

    pub fn sink_options(&self) -> SinkOptions {
        self.stages.iter().find_map(|s| s.stage.sink_options()).unwrap_or_default()
    }

    /// The branches as they would be built, decoder to muxer.
    pub fn describe_graph(&self, ctx: &BuildContext) -> Result<GraphDescription, PipelineError> {
        let chain = |kind| -> Result<String, PipelineError> {
            let elements = branch::elements(kind, &self.stages, ctx)?;
            Ok(format!("appsrc ! decodebin ! {} ! mp4mux faststart=true ! appsink", branch::describe_chain(&elements)))
        };
        Ok(GraphDescription {
            video: chain(branch::BranchKind::Video)?,
            audio: if self.keeps_audio() { Some(chain(branch::BranchKind::Audio)?) } else { None },
        })
    }

    /// Run on the calling thread until the output is committed or the run fails. Never call
    /// from a tokio worker thread: use [`Pipeline::run`].
    pub fn run_blocking(
        self: &Arc<Self>,
        source: Arc<dyn ByteSource>,
        sink: Box<dyn ByteSink>,
        opts: RunOptions,
    ) -> Result<RunReport, PipelineError> {
        init()?;
        run::run_blocking(self.clone(), source, sink, opts)
    }

    /// Run on tokio's blocking pool.
    pub async fn run(
        self: &Arc<Self>,
        source: Arc<dyn ByteSource>,
        sink: Box<dyn ByteSink>,
        opts: RunOptions,
    ) -> Result<RunReport, PipelineError> {
        let plan = self.clone();
        tokio::task::spawn_blocking(move || plan.run_blocking(source, sink, opts))
            .await
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("the pipeline task failed: {e}")))?
    }
}
