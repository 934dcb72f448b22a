//! Adapters between the byte traits and GStreamer: `appsrc` in random-access mode over a
//! [`ByteSource`], and `appsink` over a [`ByteSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gst::prelude::*;

use crate::error::{ErrorCode, PipelineError};
use crate::io::{ByteSink, ByteSource};
use crate::shared::Shared;

/// Bytes asked for when a caller gives no length (push mode); pull mode always gives one.
const DEFAULT_READ: usize = 64 * 1024;

/// An `appsrc` that answers each request with exactly the bytes asked for, at the offset asked
/// for. Demuxers run it in pull mode, so an index at the end of a file is read without reading
/// what lies before it.
pub(crate) fn appsrc(source: Arc<dyn ByteSource>, shared: Arc<Shared>) -> Result<gst_app::AppSrc, PipelineError> {
    let size = source.size();
    let appsrc = gst_app::AppSrc::builder()
        .name("source")
        .stream_type(gst_app::AppStreamType::RandomAccess)
        .format(gst::Format::Bytes)
        .size(size as i64)
        .build();

    // GStreamer clamps reads to the size before they reach us; look at what was asked for. A
    // demuxer asking past the end means the file is shorter than its index says.
    let pull_shared = shared.clone();
    appsrc.static_pad("src").expect("appsrc has a src pad").add_probe(gst::PadProbeType::PULL, move |_, info| {
        if info.offset.saturating_add(info.size as u64) > size {
            pull_shared.read_past_end.store(true, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    let offset = Arc::new(AtomicU64::new(0));
    let seek_offset = offset.clone();
    appsrc.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |appsrc, length| {
                let at = offset.load(Ordering::SeqCst);
                if at >= size {
                    let _ = appsrc.end_of_stream();
                    return;
                }
                let want = if length == u32::MAX || length == 0 { DEFAULT_READ } else { length as usize };
                match source.read_at(at, want) {
                    Ok(bytes) if bytes.is_empty() => {
                        let _ = appsrc.end_of_stream();
                    }
                    Ok(bytes) => {
                        let n = bytes.len() as u64;
                        offset.store(at + n, Ordering::SeqCst);
                        shared.bytes_read.fetch_add(n, Ordering::Relaxed);
                        let mut buffer = gst::Buffer::from_mut_slice(bytes);
                        buffer.get_mut().expect("new buffer is writable").set_offset(at);
                        let _ = appsrc.push_buffer(buffer);
                    }
                    Err(e) => {
                        let message = format!("reading the input at byte {at}: {e}");
                        shared.fail(PipelineError::new(ErrorCode::SourceFailed, message.clone()));
                        gst::element_error!(appsrc, gst::ResourceError::Read, ["{}", message]);
                    }
                }
            })
            .seek_data(move |_, to| {
                if to > size {
                    return false;
                }
                seek_offset.store(to, Ordering::SeqCst);
                true
            })
            .build(),
    );
    Ok(appsrc)
}

/// An `appsink` that hands every output buffer to the sink, in order. Blocking in `write` is the
/// backpressure: the muxer waits while the sink is slow.
pub(crate) fn appsink(sink: Box<dyn ByteSink>, shared: Arc<Shared>) -> gst_app::AppSink {
    *shared.sink.lock().unwrap() = Some(sink);
    let appsink = gst_app::AppSink::builder().name("sink").sync(false).max_buffers(8).build();

    // The sink is sequential: a muxer that wanted to seek back would corrupt the output.
    let seg_shared = shared.clone();
    appsink.static_pad("sink").expect("appsink has a sink pad").add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if let gst::EventView::Segment(seg) = event.view() {
                    let segment = seg.segment();
                    let written = seg_shared.bytes_written.load(Ordering::SeqCst);
                    if segment.format() == gst::Format::Bytes && segment.start().value() as u64 != written {
                        seg_shared.fail(PipelineError::new(
                            ErrorCode::Internal,
                            format!(
                                "the muxer asked to rewrite byte {} of a sequential output",
                                segment.start().value()
                            ),
                        ));
                        return gst::PadProbeReturn::Drop;
                    }
                }
            }
            gst::PadProbeReturn::Ok
        },
    );

    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                if buffer.size() == 0 {
                    return Ok(gst::FlowSuccess::Ok); // mp4mux pushes an empty buffer first
                }
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let result = match shared.sink.lock().unwrap().as_mut() {
                    Some(sink) => sink.write(map.as_slice()),
                    None => return Err(gst::FlowError::Flushing),
                };
                match result {
                    Ok(()) => {
                        shared.bytes_written.fetch_add(map.size() as u64, Ordering::SeqCst);
                        Ok(gst::FlowSuccess::Ok)
                    }
                    Err(e) => {
                        let message = format!("writing the output: {e}");
                        shared.fail(PipelineError::new(ErrorCode::SinkFailed, message.clone()));
                        gst::element_error!(appsink, gst::ResourceError::Write, ["{}", message]);
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .build(),
    );
    appsink
}
