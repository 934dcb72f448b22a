//! Admission: the checks a run makes from the input's first bytes and its container header,
//! before a single element exists. A file off the container allow-list, or whose MP4 header
//! breaks a limit, is refused here in a few small reads; what only the demuxer and parsers can
//! tell (Matroska streams, the codec's own picture size) is checked while decodebin plugs them
//! (see `graph`), and decoded pictures and the run's time are checked while it runs.

use anb_media::container::{ACCEPTED, SNIFF_LEN};
use anb_media::mp4::{self, HeaderError};
use anb_media::{sniff, Container, InputLimits, MediaFacts, Refusal, Sniffed};

use crate::error::{ErrorCode, PipelineError};
use crate::io::ByteSource;

/// An input that passed the header checks.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub container: Container,
    /// What an MP4/MOV header said; `None` for Matroska, or an index the demuxer must judge.
    pub facts: Option<MediaFacts>,
}

impl Admitted {
    /// Pixels a second of the first video stream, when the header gives size and rate.
    pub fn pixel_rate(&self) -> Option<f64> {
        let video = self.facts.as_ref()?.video()?;
        Some(video.width as f64 * video.height as f64 * video.fps()?)
    }

    /// (width, height) of the first video stream, when the header gives them.
    pub fn picture_size(&self) -> Option<(u32, u32)> {
        let video = self.facts.as_ref()?.video()?;
        Some((video.width, video.height))
    }
}

pub(crate) fn admit(source: &dyn ByteSource, limits: &InputLimits) -> Result<Admitted, PipelineError> {
    let source_failed =
        |e: std::io::Error| PipelineError::new(ErrorCode::SourceFailed, format!("reading the input's header: {e}"));
    let head = source.read_at(0, SNIFF_LEN).map_err(source_failed)?;
    let container = match sniff(&head) {
        Sniffed::Accepted(container) => container,
        Sniffed::Refused(name) => {
            let message = format!("{name} files are not accepted (containers: {})", ACCEPTED.join(", "));
            return Err(Refusal::unsupported("containers", name, message).into());
        }
        Sniffed::Unknown => {
            return Err(PipelineError::new(ErrorCode::InvalidInput, "not a video file (unrecognised format)"))
        }
    };
    let facts = if container.is_iso_media() {
        let read = |offset: u64, len: usize| source.read_at(offset, len);
        match mp4::read_facts(&read, source.size(), container) {
            Ok(facts) => facts,
            Err(HeaderError::Io(e)) => return Err(source_failed(e)),
            Err(HeaderError::Refused(refusal)) => return Err(refusal.into()),
        }
    } else {
        None
    };
    if let Some(facts) = &facts {
        limits.check_facts(facts)?;
    }
    Ok(Admitted { container, facts })
}

/// The caps decodebin starts from, so it never typefinds (typefinders read up to half a
/// megabyte and could name a format off the allow-list).
pub(crate) fn container_caps(container: Container) -> gst::Caps {
    gst::Caps::new_empty_simple(if container.is_iso_media() { "video/quicktime" } else { "video/x-matroska" })
}

/// Check the limits a stream's caps can speak to: picture size, frame rate and pixel rate.
/// Returns the pixel rate when the caps give all three.
pub(crate) fn check_caps(s: &gst::StructureRef, limits: &InputLimits) -> Result<Option<f64>, Refusal> {
    let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height")) else { return Ok(None) };
    let (width, height) = (width.max(0) as u32, height.max(0) as u32);
    limits.check_picture(width, height)?;
    let Ok(rate) = s.get::<gst::Fraction>("framerate") else { return Ok(None) };
    if rate.numer() <= 0 || rate.denom() <= 0 {
        return Ok(None); // variable rate: counted while running
    }
    let fps = rate.numer() as f64 / rate.denom() as f64;
    limits.check_rate(width, height, fps)?;
    Ok(Some(width as f64 * height as f64 * fps))
}

/// Frames a video may run ahead of `max_fps` before it is refused: a burst at the start (an
/// encoder's priming frames, a stream whose first timestamps bunch up) is no reason to refuse.
const FPS_SLACK_FRAMES: f64 = 30.0;

/// Check decoded pictures while the run goes: a stream may announce one size in its header and
/// decode to another, or carry timestamps far closer than its announced rate. Refuses (through
/// `shared`) on a caps change past the size limits, on more frames than `max_frames`, or on
/// more frames than `max_fps` allows for the media time seen.
pub(crate) fn guard_decoded_video(pad: &gst::Pad, limits: InputLimits, shared: std::sync::Arc<crate::shared::Shared>) {
    use gst::prelude::*;
    use std::sync::atomic::Ordering;

    // Caps: a size change mid-stream. Events are never dropped (the teardown needs them).
    let (caps_limits, caps_shared) = (limits.clone(), shared.clone());
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data {
            if let gst::EventView::Caps(caps) = event.view() {
                if let Some(Err(refusal)) = caps.caps().structure(0).map(|s| check_caps(s, &caps_limits)) {
                    caps_shared.refuse(refusal.into());
                }
            }
        }
        gst::PadProbeReturn::Ok
    });

    // Buffers: the frame count and the rate the timestamps really have. After a refusal no
    // more pictures go on.
    // (frames seen, first timestamp); one streaming thread calls the probe, so never contended.
    let seen = std::sync::Mutex::new((0u64, None::<gst::ClockTime>));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if shared.refused.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Drop;
        }
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        let mut seen = seen.lock().unwrap();
        seen.0 += 1;
        let frames = seen.0;
        let pts = buffer.pts();
        let first = *seen.1.get_or_insert(pts.unwrap_or(gst::ClockTime::ZERO));
        let media_secs = pts.map_or(0.0, |p| p.saturating_sub(first).nseconds() as f64 / 1e9);
        let verdict = if frames > limits.max_frames {
            Err(Refusal::too_large(
                "max_frames",
                frames,
                limits.max_frames,
                &format!("the video holds more than {} frames", limits.max_frames),
            ))
        } else if frames as f64 > limits.max_fps as f64 * media_secs + FPS_SLACK_FRAMES {
            // Intervals between the frames seen, over the time they span.
            let fps = (frames - 1) as f64 / media_secs.max(1e-6);
            Err(Refusal::too_large(
                "max_fps",
                format!("{fps:.0}"),
                limits.max_fps,
                &format!("the video runs at {fps:.0} frames per second ({frames} frames in {media_secs:.3} s)"),
            ))
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => gst::PadProbeReturn::Ok,
            Err(refusal) => {
                shared.refuse(refusal.into());
                gst::PadProbeReturn::Drop
            }
        }
    });
}
