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

/// Packets that carry only a presentation time are cut this long after the window's end. The
/// margin covers frame reordering (B-frames arrive after later-shown frames), so every frame
/// shown before the end still reaches the exact cut after decoding.
const COARSE_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// Cut a demuxer's output pad (compressed packets) at the window's end.
///
/// Needed besides the exact cut: once one stream ends, decodebin's multiqueue lets the others
/// grow without bound, so the demuxer would read far ahead of a slow video branch.
///
/// A packet that carries a decoding time is cut when that time reaches the end: decoding times
/// only grow and a frame is never shown before it is decoded, so nothing after it is shown
/// inside the window, while every frame that is (and every frame those refer to) has come
/// before. The decoder then decodes only the one to three frames past the end that B-frames
/// inside the window refer to, where a presentation-time margin would decode half a second
/// more (15 frames of 1080p at 30 fps, 1.7 % of a 30 s job's decoding).
pub(crate) fn install_coarse(demuxer_pad: &gst::Pad, window: Window) {
    let Some(max) = window.max_duration else { return };
    let end = gst::ClockTime::from_nseconds((window.start + max).as_nanos() as u64);
    demuxer_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        let past_end = match decoding_running_time(pad, buffer) {
            Some(decoding) => decoding >= end,
            None => running_time(pad, buffer).is_some_and(|running| running >= end + COARSE_MARGIN),
        };
        if past_end {
            // The pad becomes EOS: this and every later push returns EOS to the demuxer.
            pad.push_event(gst::event::Eos::new());
            return gst::PadProbeReturn::Drop;
        }
        gst::PadProbeReturn::Ok
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
    to_running_time(pad, buffer.pts().or_else(|| buffer.dts())?)
}

/// The running time of a buffer's decoding time, if it has one.
fn decoding_running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    to_running_time(pad, buffer.dts()?)
}

fn to_running_time(pad: &gst::Pad, time: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let running = segment.to_running_time(time)?;
    // A pad offset (a window starting later) shifts what downstream sees.
    let offset = pad.offset();
    if offset >= 0 {
        Some(running + gst::ClockTime::from_nseconds(offset as u64))
    } else {
        running.checked_sub(gst::ClockTime::from_nseconds(offset.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Push packets given as (decoding ms, presentation ms) through a demuxer-like pad with the
    /// coarse cut of a window ending at 1 s; return the presentation times that got through and
    /// whether EOS followed them.
    fn coarse_cut(packets: &[(Option<u64>, u64)]) -> (Vec<u64>, bool) {
        gst::init().unwrap();
        let passed = Arc::new(Mutex::new(Vec::new()));
        let eos = Arc::new(AtomicBool::new(false));
        let (sink_passed, sink_eos) = (passed.clone(), eos.clone());
        let sink = gst::Pad::builder(gst::PadDirection::Sink)
            .chain_function(move |_, _, buffer| {
                sink_passed.lock().unwrap().push(buffer.pts().unwrap().mseconds());
                Ok(gst::FlowSuccess::Ok)
            })
            .event_function(move |_, _, event| {
                sink_eos.fetch_or(event.type_() == gst::EventType::Eos, Ordering::SeqCst);
                true
            })
            .build();
        let src = gst::Pad::builder(gst::PadDirection::Src).build();
        src.link(&sink).unwrap();
        sink.set_active(true).unwrap();
        src.set_active(true).unwrap();
        assert!(src.push_event(gst::event::StreamStart::new("packets")));
        assert!(src.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
        install_coarse(&src, Window { start: Duration::ZERO, max_duration: Some(Duration::from_secs(1)) });
        for &(dts, pts) in packets {
            let mut buffer = gst::Buffer::new();
            let b = buffer.get_mut().unwrap();
            b.set_dts(dts.map(gst::ClockTime::from_mseconds));
            b.set_pts(gst::ClockTime::from_mseconds(pts));
            if src.push(buffer).is_err() {
                break;
            }
        }
        let passed = passed.lock().unwrap().clone();
        (passed, eos.load(Ordering::SeqCst))
    }

    #[test]
    fn packets_are_cut_where_decoding_passes_the_end() {
        // Decoding order of I P B B P B B ... at 10 fps: the P shown at 1.1 s is decoded before
        // the B-frames shown at 0.8 and 0.9 s, which refer to it.
        let packets = [(0, 100), (100, 400), (200, 200), (300, 300), (400, 700), (500, 500), (600, 600), (700, 1000)];
        let after = [(800, 800), (900, 900), (1000, 1300), (1100, 1100), (1200, 1200), (1300, 1600)];
        let all: Vec<_> = packets.iter().chain(&after).map(|&(d, p)| (Some(d), p)).collect();
        let (passed, eos) = coarse_cut(&all);
        assert_eq!(passed, [100, 400, 200, 300, 700, 500, 600, 1000, 800, 900], "up to the first decoded at 1 s");
        assert!(eos);
    }

    #[test]
    fn packets_without_a_decoding_time_get_half_a_second_for_reordering() {
        let packets: Vec<_> = (0..20).map(|i| (None, i * 100)).collect();
        let (passed, eos) = coarse_cut(&packets);
        assert_eq!(passed, (0..15).map(|i| i * 100).collect::<Vec<_>>());
        assert!(eos);
    }
}
