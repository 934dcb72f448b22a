//! State shared between GStreamer's streaming threads and the runner.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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
    /// A media limit or the allow-list refused the input while the graph ran; the failure holds
    /// the refusal. The runner stops at its next tick, whether or not an error reaches the bus.
    pub refused: AtomicBool,
    /// Video and audio streams the demuxer has exposed.
    pub media_streams: AtomicU32,
    /// Pixels a second of the video stream (`f64` bits), once known; 0 while unknown.
    pub pixel_rate_bits: AtomicU64,
    /// Pixels of one picture of the video stream (width × height), once known; 0 while unknown.
    pub picture_pixels: AtomicU64,
    /// The demuxer reading the input, once decodebin has plugged it.
    pub demuxer: Mutex<Option<gst::glib::WeakRef<gst::Element>>>,
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

    /// Record a refusal of the input and make the runner stop.
    pub fn refuse(&self, error: PipelineError) {
        self.fail(error);
        self.refused.store(true, Ordering::SeqCst);
    }

    pub fn pixel_rate(&self) -> Option<f64> {
        match self.pixel_rate_bits.load(Ordering::Relaxed) {
            0 => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    pub fn set_pixel_rate(&self, rate: f64) {
        if rate > 0.0 {
            self.pixel_rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn picture_pixels(&self) -> Option<u64> {
        match self.picture_pixels.load(Ordering::Relaxed) {
            0 => None,
            pixels => Some(pixels),
        }
    }

    pub fn set_picture_pixels(&self, width: u32, height: u32) {
        self.picture_pixels.store(u64::from(width) * u64::from(height), Ordering::Relaxed);
    }

    pub fn take_failure(&self) -> Option<PipelineError> {
        self.failure.lock().unwrap().take()
    }

    /// The input demuxer's reading task has stopped and no stream came out of it: it gave up on
    /// the file. Its error message may never arrive, because decodebin drops the errors an element
    /// posts while decodebin is still bringing it up (GStreamer 1.22's decodebin2 filters them
    /// until `connect_pad` has finished), and a demuxer that fails within that window is silent.
    pub fn demuxer_gave_up(&self) -> bool {
        use gst::prelude::*;
        if self.video_linked.load(Ordering::SeqCst) {
            return false;
        }
        let Some(demuxer) = self.demuxer.lock().unwrap().as_ref().and_then(|weak| weak.upgrade()) else {
            return false;
        };
        let stopped = |pad: &gst::Pad| pad.mode() == gst::PadMode::Pull && pad.task_state() == gst::TaskState::Paused;
        demuxer.sink_pads().iter().any(stopped)
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
