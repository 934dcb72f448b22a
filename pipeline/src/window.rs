//! Cutting every branch to the output window, in sync, and tracking the output position.
//!
//! The cut compares each buffer's running time with the window. Before the window, buffers are
//! dropped. At the first buffer past the end, the branch head receives EOS and the buffer is let
//! through to it: the push then returns EOS upstream, so the demuxer stops reading instead of
//! decoding the rest of the file into a pad that drops everything (measured: 5% of a 10-minute
//! file read instead of 100%).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gst::prelude::*;

use crate::shared::Shared;
use crate::stage::Window;

/// Cut at `sink_pad` (a branch head: a queue, or a passthrough on one CPU); shift running time
/// on `src_pad` so the output starts at zero when the window starts later.
pub(crate) fn install(sink_pad: &gst::Pad, src_pad: &gst::Pad, window: Window) {
    let start = gst::ClockTime::from_nseconds(window.start.as_nanos() as u64);
    let end = window.max_duration.map(|d| start + gst::ClockTime::from_nseconds(d.as_nanos() as u64));
    if start > gst::ClockTime::ZERO {
        src_pad.set_offset(-(start.nseconds() as i64));
    }
    let ended = AtomicBool::new(false);
    sink_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        let Some(running) = running_time(pad, buffer) else { return gst::PadProbeReturn::Ok };
        let buffer_end = running + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
        if buffer_end <= start && buffer.duration().is_some() || running < start && buffer.duration().is_none() {
            return gst::PadProbeReturn::Drop;
        }
        if let Some(end) = end {
            if running >= end && !ended.swap(true, Ordering::SeqCst) {
                // The buffer itself then reaches a pad that is EOS, and EOS returns upstream.
                pad.send_event(gst::event::Eos::new());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Packets past the window's end plus this margin are not demuxed at all. The margin covers
/// frame reordering (B-frames arrive before earlier-shown frames), so every frame shown before
/// the end still reaches the exact cut after decoding.
const COARSE_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// Cut a demuxer's output pad (compressed packets) shortly after the window's end.
///
/// Needed besides the exact cut: once one stream ends, decodebin's multiqueue lets the others
/// grow without bound, so the demuxer would read far ahead of a slow video branch.
pub(crate) fn install_coarse(demuxer_pad: &gst::Pad, window: Window) {
    let Some(max) = window.max_duration else { return };
    let limit = gst::ClockTime::from_nseconds((window.start + max).as_nanos() as u64) + COARSE_MARGIN;
    demuxer_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        match running_time(pad, buffer) {
            Some(running) if running >= limit => {
                // The pad becomes EOS: this and every later push returns EOS to the demuxer.
                pad.push_event(gst::event::Eos::new());
                gst::PadProbeReturn::Drop
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

/// Record the newest running time seen on a branch's encoder output as the output position.
pub(crate) fn track_position(pad: &gst::Pad, shared: Arc<Shared>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            if let Some(running) = running_time(pad, buffer) {
                let end = running + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                shared.position_ns.fetch_max(end.nseconds(), Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let pts = buffer.pts().or_else(|| buffer.dts())?;
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let running = segment.to_running_time(pts)?;
    // A pad offset (a window starting later) shifts what downstream sees.
    let offset = pad.offset();
    if offset >= 0 {
        Some(running + gst::ClockTime::from_nseconds(offset as u64))
    } else {
        running.checked_sub(gst::ClockTime::from_nseconds(offset.unsigned_abs()))
    }
}
