//! Building the GStreamer graph of one run:
//!
//! ```text
//! appsrc (random access) ! decodebin ─┬─ video branch: queue ! <stages> ! queue ! <encoder> ─┬─ mp4mux ! appsink
//!                                     └─ audio branch: queue ! <stages> ! queue ! <encoder> ─┘
//! ```
//!
//! On one CPU the video branch has no queues (see `branch::elements`).
//!
//! Branches are created when decodebin exposes its pads, because only then is it known whether
//! the input has audio. Streams that are not used (a second video, dropped audio, subtitles) go
//! to a `fakesink`, and are trimmed too, so they never make the demuxer read past the window.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gst::prelude::*;

use crate::branch::{self, BranchKind};
use crate::elements::{make, make_with};
use crate::error::{ErrorCode, PipelineError};
use crate::io::{ByteSink, ByteSource};
use crate::shared::Shared;
use crate::stage::{BuildContext, Window};
use crate::{endpoints, window, Pipeline};

pub(crate) struct Graph {
    pub pipeline: gst::Pipeline,
    pub shared: Arc<Shared>,
}

pub(crate) fn build(
    plan: Arc<Pipeline>,
    source: Arc<dyn ByteSource>,
    sink: Box<dyn ByteSink>,
    ctx: &BuildContext,
) -> Result<Graph, PipelineError> {
    let shared = Arc::new(Shared::default());
    let pipeline = gst::Pipeline::with_name("anb");
    let container = endpoints::sniff(source.as_ref());
    let appsrc = endpoints::appsrc(source, shared.clone())?;
    let decodebin = make("decodebin")?;
    if let Some(caps) = container {
        decodebin.set_property("sink-caps", &caps);
    }
    // An aggregator with no latency holds one buffer per pad: each encoder push then waits for
    // the muxer's thread to take it, two thread switches per packet. A second of room per pad
    // (a few hundred KiB of encoded data) lets the branches run on; the file is the same, since a
    // non-live aggregator still waits for every pad before writing. Measured on one pinned CPU:
    // 10,300 context switches a job instead of 16,400.
    let mux = make_with("mp4mux", &[("faststart", "true"), ("latency", "1000000000")])?;
    let appsink = endpoints::appsink(sink, shared.clone());
    let internal = |e: gst::glib::BoolError| PipelineError::new(ErrorCode::Internal, e.to_string());
    pipeline
        .add_many([appsrc.upcast_ref(), &decodebin, &mux, appsink.upcast_ref()])
        .map_err(internal)?;
    appsrc.link(&decodebin).map_err(internal)?;
    mux.link(&appsink).map_err(internal)?;

    // libavcodec's own rule (CPUs + 1 frame threads), applied to the CPU quota.
    let threads = if ctx.threads > 1 { ctx.threads + 1 } else { 1 }.to_string();
    let window = plan.window();
    let demuxer_shared = shared.clone();
    decodebin.connect("deep-element-added", false, move |args| {
        let Ok(element) = args[2].get::<gst::Element>() else { return None };
        // Decoders pick their own thread counts from the host's CPUs, ignoring cgroup quotas.
        if element.find_property("max-threads").is_some() {
            element.set_property_from_str("max-threads", &threads);
        }
        if is_demuxer(&element) {
            demuxer_shared.demuxer.lock().unwrap().get_or_insert_with(|| element.downgrade());
            if let Some(w) = window {
                element.connect_pad_added(move |_, pad| window::install_coarse(pad, w));
            }
        }
        None
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
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let media = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
    if shared.input_duration_ns.load(Ordering::SeqCst) == 0 {
        if let Some(d) = pad.query_duration::<gst::ClockTime>() {
            shared.input_duration_ns.store(d.nseconds(), Ordering::SeqCst);
        }
    }

    let kind = if media.starts_with("video/") && !shared.video_linked.swap(true, Ordering::SeqCst) {
        Some(BranchKind::Video)
    } else if media.starts_with("audio/") && plan.keeps_audio() && !shared.audio_linked.swap(true, Ordering::SeqCst) {
        Some(BranchKind::Audio)
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
        let mux_pad = mux.request_pad_simple(template).ok_or_else(|| {
            PipelineError::new(ErrorCode::Internal, format!("mp4mux refused a {template} pad"))
        })?;
        let tail_pad = tail.static_pad("src").expect("the last element of a branch has a src pad");
        tail_pad.link(&mux_pad).map_err(|e| {
            PipelineError::new(ErrorCode::InvalidPipeline, format!("the encoder output cannot go into MP4: {e}"))
        })?;
        if kind == BranchKind::Video {
            window::track_position(&tail_pad, shared.clone());
        }
    }
    let head_pad = head.static_pad("sink").expect("a branch head has a sink pad");
    pad.link(&head_pad)
        .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("linking a decoded {media} stream: {e}")))?;
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
