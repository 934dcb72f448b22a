//! Building the GStreamer graph of one run:
//!
//! ```text
//! appsrc (random access) ! decodebin ─┬─ video branch: queue ! <stages> ! <encoder> ─────────┬─ mp4mux ! appsink
//!                                     └─ audio branch: queue ! <stages> ! queue ! <encoder> ─┘
//! ```
//!
//! Sound that already fits the output (AAC-LC, at most two channels, no stage changing it) is
//! not decoded: decodebin exposes it still encoded, and its branch is the head queue alone.
//!
//! On one CPU the video branch has no queues (see `branch::elements`).
//!
//! Branches are created when decodebin exposes its pads, because only then is it known whether
//! the input has audio. Streams that are not used (a second video, dropped audio, subtitles) go
//! to a `fakesink`, and are trimmed too, so they never make the demuxer read past the window.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gst::prelude::*;

use crate::admission::{self, Admitted};
use crate::branch::{self, BranchKind};
use crate::elements::{make, make_with};
use crate::error::{ErrorCode, PipelineError};
use crate::io::{ByteSink, ByteSource};
use crate::shared::Shared;
use crate::stage::{BuildContext, Window};
use crate::{endpoints, window, Pipeline};

/// What the demuxer may read ahead of a stream's branch, in encoded bytes per stream.
/// decodebin's multiqueue otherwise keeps its start-up limit (8 MiB) for the whole run, and
/// lets a stream that is not consumed fast enough grow towards it while another stream's queue
/// is empty: the video waits behind the encoder while the sound runs ahead into its branch's
/// queue, so the demuxer read 6 s of video ahead (7.5 MiB of a 10 Mbit/s input) before the
/// sound's queue filled. 2 MiB is decodebin's own limit for playback; a picture larger than the
/// room left is still let in, so no stream can block on it.
const DEMUX_QUEUE_BYTES: u32 = 2 * 1024 * 1024;

/// The H.264 decoders decodebin may pick (ours, and `avdec_h264` for 10-bit and 4:2:2 streams).
const H264_DECODERS: [&str; 2] = [crate::h264dec::ELEMENT_NAME, "avdec_h264"];

/// Frame threads for an H.264 decoder on `cpus` CPUs, for pictures of `picture_pixels`.
///
/// Each frame thread holds pictures and a copy of the decoder's state, and libavcodec's own rule
/// is CPUs + 1. Up to 1080p's pixel count, decoding is a small share of a job beside encoding:
/// one thread per two CPUs keeps up. On two CPUs one thread instead of two gave the same wall
/// time on 1080p30 and 1080p60 inputs, with the showcase preset and with `ultrafast`, and 7.5 MiB
/// less at the job's peak (docs/capacity.md, "The second pass"); more CPUs were not measured and
/// get the same share. A larger picture gets one per CPU: a 2160p30 input on two CPUs took 12 %
/// longer with one. An unknown size is treated as a large one.
fn h264_decoder_threads(cpus: usize, picture_pixels: Option<u64>) -> usize {
    const PIXELS_1080P: u64 = 1920 * 1080;
    match picture_pixels {
        Some(pixels) if pixels <= PIXELS_1080P => cpus.div_ceil(2),
        _ => cpus,
    }
    .max(1)
}

pub(crate) struct Graph {
    pub pipeline: gst::Pipeline,
    pub shared: Arc<Shared>,
}

pub(crate) fn build(
    plan: Arc<Pipeline>,
    source: Arc<dyn ByteSource>,
    sink: Box<dyn ByteSink>,
    ctx: &BuildContext,
    admitted: &Admitted,
) -> Result<Graph, PipelineError> {
    let shared = Arc::new(Shared::default());
    if let Some(rate) = admitted.pixel_rate() {
        shared.set_pixel_rate(rate);
    }
    if let Some((width, height)) = admitted.picture_size() {
        shared.set_picture_pixels(width, height);
    }
    let pipeline = gst::Pipeline::with_name("anb");
    let appsrc = endpoints::appsrc(source, shared.clone())?;
    let decodebin = make("decodebin")?;
    decodebin.set_property("sink-caps", admission::container_caps(admitted.container));
    decodebin.set_property("max-size-bytes", DEMUX_QUEUE_BYTES);
    // An aggregator with no latency holds one buffer per pad: each encoder push then waits for
    // the muxer's thread to take it, two thread switches per packet. A second of room per pad
    // (a few hundred KiB of encoded data) lets the branches run on; the file is the same, since a
    // non-live aggregator still waits for every pad before writing. Measured on one pinned CPU:
    // 10,300 context switches a job instead of 16,400.
    let mux = make_with("mp4mux", &[("faststart", "true"), ("latency", "1000000000")])?;
    let appsink = endpoints::appsink(sink, shared.clone());
    let internal = |e: gst::glib::BoolError| PipelineError::new(ErrorCode::Internal, e.to_string());
    pipeline.add_many([appsrc.upcast_ref(), &decodebin, &mux, appsink.upcast_ref()]).map_err(internal)?;
    appsrc.link(&decodebin).map_err(internal)?;
    mux.link(&appsink).map_err(internal)?;

    let cpus = ctx.threads;
    let window = plan.window();
    let limits = plan.input_limits();
    let demuxer_shared = shared.clone();
    let demuxer_limits = limits.clone();
    decodebin.connect("deep-element-added", false, move |args| {
        let Ok(element) = args[2].get::<gst::Element>() else { return None };
        // Decoders pick their own thread counts from the host's CPUs, ignoring cgroup quotas.
        if element.find_property("max-threads").is_some() {
            let h264 = element.factory().is_some_and(|f| H264_DECODERS.contains(&f.name().as_str()));
            let threads = if h264 { h264_decoder_threads(cpus, demuxer_shared.picture_pixels()) } else { cpus };
            element.set_property_from_str("max-threads", &threads.to_string());
        }
        if is_demuxer(&element) {
            demuxer_shared.demuxer.lock().unwrap().get_or_insert_with(|| element.downgrade());
            // Connected before decodebin's own handler, so a stream is counted and checked
            // before anything is plugged for it.
            let (shared, limits) = (demuxer_shared.clone(), demuxer_limits.clone());
            element.connect_pad_added(move |demuxer, pad| {
                if let Err(refusal) = check_demuxer_stream(pad, &limits, &shared) {
                    let message = refusal.message.clone();
                    shared.refuse(refusal.into());
                    gst::element_error!(demuxer, gst::StreamError::Format, ["{}", message]);
                }
            });
            if let Some(w) = window {
                element.connect_pad_added(move |_, pad| window::install_coarse(pad, w));
            }
        }
        None
    });

    // The codec allow-list, and the limits a parser's caps speak to, before each element is
    // plugged: returning `false` stops decodebin from plugging anything for that stream.
    let plug_shared = shared.clone();
    let (plug_plan, plug_ctx) = (plan.clone(), ctx.clone());
    decodebin.connect("autoplug-continue", false, move |args| {
        let dbin = args[0].get::<gst::Element>().ok()?;
        let caps = args[2].get::<gst::Caps>().ok()?;
        let plug = may_plug(&dbin, &caps, &limits, &plug_shared)
            // Sound that already fits the output stops here, undecoded: decodebin exposes it as is.
            && !caps.structure(0).is_some_and(|s| plug_plan.passes_encoded_audio(s, &plug_ctx));
        Some(plug.to_value())
    });

    let unknown_shared = shared.clone();
    decodebin.connect("unknown-type", false, move |args| {
        if let Ok(caps) = args[2].get::<gst::Caps>() {
            if caps.structure(0).is_some_and(|s| s.name().starts_with("video/")) {
                unknown_shared.undecodable_video.store(true, Ordering::SeqCst);
            }
        }
        None
    });

    let pads_shared = shared.clone();
    decodebin.connect_no_more_pads(move |dbin| {
        if pads_shared.video_linked.load(Ordering::SeqCst) {
            return;
        }
        let error = if pads_shared.undecodable_video.load(Ordering::SeqCst) {
            PipelineError::new(ErrorCode::UnsupportedInput, "the video is in a format this installation cannot decode")
        } else {
            PipelineError::new(ErrorCode::InvalidInput, "the file has no video stream")
        };
        let message = error.message();
        pads_shared.fail(error);
        gst::element_error!(dbin, gst::StreamError::WrongType, ["{}", message]);
    });

    let weak_pipeline = pipeline.downgrade();
    let weak_mux = mux.downgrade();
    let pad_shared = shared.clone();
    let ctx = ctx.clone();
    decodebin.connect_pad_added(move |dbin, pad| {
        let (Some(pipeline), Some(mux)) = (weak_pipeline.upgrade(), weak_mux.upgrade()) else { return };
        if let Err(error) = on_pad_added(&plan, &pipeline, &mux, pad, &pad_shared, &ctx) {
            let message = error.message();
            pad_shared.fail(error);
            gst::element_error!(dbin, gst::CoreError::Negotiation, ["{}", message]);
        }
    });

    Ok(Graph { pipeline, shared })
}

fn on_pad_added(
    plan: &Pipeline,
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    pad: &gst::Pad,
    shared: &Arc<Shared>,
    ctx: &BuildContext,
) -> Result<(), PipelineError> {
    if shared.refused.load(Ordering::SeqCst) {
        return Ok(()); // the run is stopping; link nothing more
    }
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let media = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
    if shared.input_duration_ns.load(Ordering::SeqCst) == 0 {
        if let Some(d) = pad.query_duration::<gst::ClockTime>() {
            shared.input_duration_ns.store(d.nseconds(), Ordering::SeqCst);
        }
    }

    let encoded_audio = caps.structure(0).is_some_and(|s| plan.passes_encoded_audio(s, ctx));
    let kind = if media.starts_with("video/") && !shared.video_linked.swap(true, Ordering::SeqCst) {
        Some(BranchKind::Video)
    } else if media.starts_with("audio/") && plan.keeps_audio() && !shared.audio_linked.swap(true, Ordering::SeqCst) {
        Some(if encoded_audio { BranchKind::EncodedAudio } else { BranchKind::Audio })
    } else {
        None
    };

    let chain = match kind {
        Some(kind) => branch::elements(kind, plan.stages(), ctx)?,
        None => vec![make("queue")?, make_with("fakesink", &[("sync", "false"), ("async", "false")])?],
    };
    branch::add_and_link(pipeline, &chain)?;
    let head = chain.first().expect("a branch has a head element");
    let tail = chain.last().expect("a branch has elements");
    if let Some(w) = plan.window() {
        install_window(head, w);
    }
    if let Some(kind) = kind {
        let template = if kind == BranchKind::Video { "video_%u" } else { "audio_%u" };
        let mux_pad = mux
            .request_pad_simple(template)
            .ok_or_else(|| PipelineError::new(ErrorCode::Internal, format!("mp4mux refused a {template} pad")))?;
        let tail_pad = tail.static_pad("src").expect("the last element of a branch has a src pad");
        tail_pad.link(&mux_pad).map_err(|e| {
            PipelineError::new(ErrorCode::InvalidPipeline, format!("the encoder output cannot go into MP4: {e}"))
        })?;
        if kind == BranchKind::Video {
            window::track_position(&tail_pad, shared.clone());
        }
    }
    if kind == Some(BranchKind::Video) {
        admission::guard_decoded_video(pad, plan.input_limits(), shared.clone());
    }
    let head_pad = head.static_pad("sink").expect("a branch head has a sink pad");
    pad.link(&head_pad)
        .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("linking a decoded {media} stream: {e}")))?;
    Ok(())
}

/// What `autoplug-continue` answers for `caps`: plug on for accepted containers, codecs and raw
/// media within the limits; refuse the file for a picture or sound codec off the list or caps
/// past a limit; leave anything else (subtitles, metadata) unplugged and unused.
fn may_plug(dbin: &gst::Element, caps: &gst::Caps, limits: &anb_media::InputLimits, shared: &Shared) -> bool {
    use anb_media::codecs::{self, classify_caps, CapsVerdict};
    if shared.refused.load(Ordering::SeqCst) {
        return false;
    }
    let Some(s) = caps.structure(0) else { return false };
    let verdict = match classify_caps(s.name()) {
        CapsVerdict::Plug => admission::check_caps(s, limits).map(|rate| {
            if let Some(rate) = rate {
                shared.set_pixel_rate(rate);
            }
            if let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height")) {
                shared.set_picture_pixels(width.max(0) as u32, height.max(0) as u32);
            }
        }),
        CapsVerdict::Leave => return false,
        CapsVerdict::RefuseVideo => Err(anb_media::Refusal::unsupported(
            "video_codecs",
            s.name(),
            format!("the video codec {} is not accepted (video_codecs: {})", s.name(), codecs::VIDEO.join(", ")),
        )),
        CapsVerdict::RefuseAudio => Err(anb_media::Refusal::unsupported(
            "audio_codecs",
            s.name(),
            format!("the audio codec {} is not accepted (audio_codecs: {})", s.name(), codecs::AUDIO.join(", ")),
        )),
    };
    match verdict {
        Ok(()) => true,
        Err(refusal) => {
            let message = refusal.message.clone();
            shared.refuse(refusal.into());
            gst::element_error!(dbin, gst::StreamError::Format, ["{}", message]);
            false
        }
    }
}

/// A stream the demuxer exposes: count it against `max_streams` and check the duration the
/// demuxer knows.
fn check_demuxer_stream(
    pad: &gst::Pad,
    limits: &anb_media::InputLimits,
    shared: &Shared,
) -> Result<(), anb_media::Refusal> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let name = caps.structure(0).map(|s| s.name().as_str().to_owned()).unwrap_or_default();
    if name.starts_with("video/") || name.starts_with("audio/") || name.starts_with("image/") {
        let streams = shared.media_streams.fetch_add(1, Ordering::SeqCst) + 1;
        limits.check_streams(streams as usize)?;
    }
    if let Some(duration) = pad.query_duration::<gst::ClockTime>() {
        limits.check_duration(std::time::Duration::from_nanos(duration.nseconds()))?;
    }
    Ok(())
}

fn is_demuxer(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| f.metadata(gst::ELEMENT_METADATA_KLASS).is_some_and(|k| k.contains("Demux")))
}

fn install_window(head: &gst::Element, w: Window) {
    let sink_pad = head.static_pad("sink").expect("a branch head has a sink pad");
    let src_pad = head.static_pad("src").expect("a branch head has a src pad");
    window::install(&sink_pad, &src_pad, w);
}

#[cfg(test)]
mod tests {
    use super::h264_decoder_threads;

    #[test]
    fn h264_decoding_gets_one_thread_per_two_cpus_up_to_1080p_and_one_per_cpu_above() {
        let (p720, p1080, portrait_1080, p1440) = (1280 * 720, 1920 * 1080, 1080 * 1920, 2560 * 1440);
        assert_eq!(h264_decoder_threads(1, Some(p1080)), 1);
        assert_eq!(h264_decoder_threads(2, Some(p720)), 1);
        assert_eq!(h264_decoder_threads(2, Some(p1080)), 1);
        assert_eq!(h264_decoder_threads(2, Some(portrait_1080)), 1);
        assert_eq!(h264_decoder_threads(4, Some(p1080)), 2);
        assert_eq!(h264_decoder_threads(3, Some(p1080)), 2);
        assert_eq!(h264_decoder_threads(2, Some(p1440)), 2);
        assert_eq!(h264_decoder_threads(8, Some(3840 * 2160)), 8);
        assert_eq!(h264_decoder_threads(2, None), 2, "an unknown size is taken as a large picture");
        assert_eq!(h264_decoder_threads(0, None), 1);
    }
}
