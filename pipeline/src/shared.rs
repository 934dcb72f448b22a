//! State shared between GStreamer's streaming threads and the runner.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::PipelineError;
use crate::io::ByteSink;

#[derive(Default)]
pub(crate) struct Shared {
    /// Output position (running time of the newest encoded video buffer), nanoseconds.
    pub position_ns: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Input duration reported by the demuxer, nanoseconds; 0 while unknown.
    pub input_duration_ns: AtomicU64,
    pub video_linked: AtomicBool,
    pub audio_linked: AtomicBool,
    /// Something asked for bytes beyond the end of the input (a truncated file, usually).
    pub read_past_end: AtomicBool,
    /// A video stream was found that no installed decoder handles.
    pub undecodable_video: AtomicBool,
    /// The first failure a callback saw; it explains the bus error that follows.
    failure: Mutex<Option<PipelineError>>,
    pub sink: Mutex<Option<Box<dyn ByteSink>>>,
}

impl Shared {
    /// Record a failure unless one is already recorded (the first one is the cause).
    pub fn fail(&self, error: PipelineError) {
        let mut slot = self.failure.lock().unwrap();
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    pub fn take_failure(&self) -> Option<PipelineError> {
        self.failure.lock().unwrap().take()
    }

    pub fn position(&self) -> Duration {
        Duration::from_nanos(self.position_ns.load(Ordering::Relaxed))
    }

    pub fn input_duration(&self) -> Option<Duration> {
        match self.input_duration_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}
