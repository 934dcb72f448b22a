//! The `Stage` abstraction: what a stage contributes to a run.
//!
//! A stage's config struct *is* the stage (deserialized from its `[[stage]]` table). The framework
//! owns decoding, routing, queues, muxing, progress and errors; a stage only says which elements it
//! adds to the video and audio branches, in file order, plus a few declarative facts (its role,
//! an output window, whether audio survives, endpoint options).

use std::fmt;
use std::time::Duration;

use crate::error::{PipelineError, Problem};

/// Where a stage may stand in the file. Order rules are checked by the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Names the input endpoint; first if present.
    Input,
    /// Changes pictures and/or sound; before `Encode`.
    Filter,
    /// Turns raw streams into H.264/AAC; exactly one.
    Encode,
    /// Names the output endpoint; last if present.
    Output,
}

/// Facts of the machine and the file a graph is built for.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// CPU threads the run may use (respects cgroup CPU quotas).
    pub threads: usize,
    /// Where relative paths in the pipeline file resolve: the file's folder. `None` leaves
    /// them relative to the working directory (the built-in pipeline).
    pub base_dir: Option<std::path::PathBuf>,
    /// Set while the loader checks a pipeline (the dry build): a stage may then only check that
    /// a heavy element's factory exists instead of creating it. Creating an element loads its
    /// plugin's libraries into the process for good (`avenc_aac` maps the whole libav stack,
    /// about 30 MiB of resident memory), which a run that never uses it should not pay.
    pub dry_run: bool,
    /// How long the output should be, when the input's header and the trim window tell (set by
    /// the runner): a side output can aim at a point of the video before it is all decoded.
    pub expected_duration: Option<Duration>,
    /// Where the run's side outputs go (see [`crate::side_output`]); fresh for every run.
    pub artifacts: crate::side_output::Artifacts,
}

impl BuildContext {
    /// A context with `threads` CPU threads and no base folder.
    pub fn with_threads(threads: usize) -> Self {
        BuildContext { threads, base_dir: None, dry_run: false, expected_duration: None, artifacts: Default::default() }
    }
}

impl Default for BuildContext {
    fn default() -> Self {
        Self::with_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }
}

/// The part of the input that becomes the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: Duration,
    /// `None` keeps everything after `start`.
    pub max_duration: Option<Duration>,
}

/// How the input is read; the job's storage backend honours what applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    pub block_size_kib: u32,
    pub read_ahead_blocks: u32,
    pub cache_blocks: u32,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { block_size_kib: 1024, read_ahead_blocks: 2, cache_blocks: 8 }
    }
}

/// How the output is written; the job's storage backend honours what applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkOptions {
    pub part_size_mib: u32,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions { part_size_mib: 8 }
    }
}

/// One step of a pipeline. Every method has a default, so a stage implements only what it does.
pub trait Stage: fmt::Debug + Send + Sync {
    fn role(&self) -> Role {
        Role::Filter
    }

    /// Make relative file paths in the options relative to `base` (the pipeline file's folder).
    /// Called by the loader before `validate`.
    fn resolve_paths(&mut self, _base: &std::path::Path) {}

    /// Pure checks of the options, every problem at once (field names in backticks, saying what
    /// would be valid). Element availability is checked separately by a dry build.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// Elements appended to the video branch, linked in the returned order.
    fn video(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        Ok(Vec::new())
    }

    /// Elements appended to the audio branch, linked in the returned order.
    fn audio(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        Ok(Vec::new())
    }

    /// The output window (trim). The framework cuts every branch with it, in sync.
    fn window(&self) -> Option<Window> {
        None
    }

    /// `false` removes the audio stream from the output.
    fn keeps_audio(&self) -> bool {
        true
    }

    /// Whether the input's sound, still encoded as `audio` (its caps), may go to the output as
    /// it is: the run then neither decodes nor encodes it. By default a stage allows it when it
    /// adds nothing to the audio branch; one stage saying no makes the run decode and re-encode.
    fn passes_encoded_audio(&self, _audio: &gst::StructureRef, ctx: &BuildContext) -> bool {
        self.audio(ctx).is_ok_and(|chain| chain.is_empty())
    }

    fn source_options(&self) -> Option<SourceOptions> {
        None
    }

    fn sink_options(&self) -> Option<SinkOptions> {
        None
    }

    /// What input the run admits (the input stage's `limits`).
    fn input_limits(&self) -> Option<anb_media::InputLimits> {
        None
    }
}
