//! `anbh264dec`: H.264 decoding on libavcodec without copying the decoded pictures.
//!
//! `avdec_h264` hands libavcodec buffers it keeps mapped for writing while libavcodec holds
//! them as reference pictures, so `GstVideoDecoder` must copy every reference picture (3 MB at
//! 1080p) to set its timestamps: 2 % of a job's CPU and a fresh 3 MB of memory per frame
//! (measured with perf: `gst_video_decoder_finish_frame` → `gst_buffer_copy_into`). This element
//! wraps libavcodec's own reference-counted pictures read-only in `GstMemory` (one per plane,
//! described by a `GstVideoMeta`), as ffmpeg passes them to its filters; libavcodec never writes
//! to a picture it has output. An element that wants to draw into such a buffer gets a copy from
//! GStreamer first, as for any read-only memory.
//!
//! It takes 8-bit 4:2:0 profiles only (everything phones and cameras record in H.264); other
//! profiles (High 10, 4:2:2, 4:4:4) are left to `avdec_h264`, which decodebin then picks.
//!
//! Against `avdec_h264` on the reference job (`benches/stock-elements.sh`: the 60 s 1080p input
//! through the showcase pipeline, 2 threads, 5 alternating pairs a run, the median of 3 runs,
//! 2026-12-07): peak memory 195.7 against 235.3 MiB (−39.5 MiB), CPU −3.2 %, wall time −3.1 %,
//! and the same output (SSIM 0.98634 both).
//! `GST_PLUGIN_FEATURE_RANK=avdec_h264:MAX` makes decodebin pick `avdec_h264` again.

mod ffi;

use std::sync::{LazyLock, Mutex, Once};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

pub const ELEMENT_NAME: &str = "anbh264dec";
/// 0: libavcodec's count from the machine's CPUs, as `avdec_h264`.
const DEFAULT_MAX_THREADS: i32 = 0;

/// The element's own debug category (`GST_DEBUG=anbh264dec:5`).
static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        ELEMENT_NAME,
        gst::DebugColorFlags::empty(),
        Some("H.264 decoding on libavcodec (anb-pipeline)"),
    )
});

/// Register the element once per process, ranked above `avdec_h264` so decodebin picks it.
pub fn register() -> Result<(), glib::BoolError> {
    static ONCE: Once = Once::new();
    crate::elements::register_once(&ONCE, ELEMENT_NAME, gst::Rank::PRIMARY + 1, H264Dec::static_type)
}

glib::wrapper! {
    pub struct H264Dec(ObjectSubclass<imp::H264Dec>)
        @extends gst_video::VideoDecoder, gst::Element, gst::Object;
}

mod imp {
    use super::ffi::{Decoder, Frame, Status};
    use super::*;

    #[derive(Default)]
    struct State {
        decoder: Option<Decoder>,
        input: Option<gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>>,
        /// (width, height) of the negotiated output.
        output: Option<(u32, u32)>,
        /// Downstream takes buffers described by a GstVideoMeta (else pictures are copied).
        video_meta: bool,
    }

    /// The element's settings (its properties).
    #[derive(Debug, Clone, Default)]
    struct Settings {
        max_threads: i32,
    }

    #[derive(Default)]
    pub struct H264Dec {
        settings: Mutex<Settings>,
        state: Mutex<State>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for H264Dec {
        const NAME: &'static str = "AnbH264Dec";
        type Type = super::H264Dec;
        type ParentType = gst_video::VideoDecoder;
    }

    impl ObjectImpl for H264Dec {
        fn properties() -> &'static [glib::ParamSpec] {
            // Named as avdec_h264's, so the graph sets both the same way.
            static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                vec![glib::ParamSpecInt::builder("max-threads")
                    .nick("Maximum decode threads")
                    .blurb("Frame threads (0 = the CPUs of the machine)")
                    .minimum(0)
                    .maximum(16)
                    .default_value(DEFAULT_MAX_THREADS)
                    .build()]
            });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut settings = self.settings.lock().unwrap();
            match pspec.name() {
                "max-threads" => settings.max_threads = value.get().expect("type checked by GObject"),
                other => unreachable!("no property {other}"),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let settings = self.settings.lock().unwrap();
            match pspec.name() {
                "max-threads" => settings.max_threads.to_value(),
                other => unreachable!("no property {other}"),
            }
        }

        fn constructed(&self) {
            self.parent_constructed();
            self.obj().set_packetized(true);
        }
    }

    impl GstObjectImpl for H264Dec {}

    impl ElementImpl for H264Dec {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                crate::elements::metadata(
                    "ANB H.264 decoder",
                    "Codec/Decoder/Video",
                    "Decodes 8-bit 4:2:0 H.264 with libavcodec, handing its pictures downstream without a copy",
                )
            });
            Some(&*META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let profiles = gst::List::new([
                    "high",
                    "main",
                    "constrained-baseline",
                    "baseline",
                    "extended",
                    "progressive-high",
                    "constrained-high",
                ]);
                let sink = gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .field("profile", profiles)
                    .build();
                let src = gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::I420).build();
                crate::elements::sink_and_src_templates(&sink, &src)
            });
            TEMPLATES.as_ref()
        }
    }

    impl VideoDecoderImpl for H264Dec {
        fn start(&self) -> Result<(), gst::ErrorMessage> {
            let threads = match self.settings.lock().unwrap().max_threads as u32 {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get() + 1),
                n => n as usize,
            };
            let decoder = Decoder::open(threads)
                .ok_or_else(|| gst::error_msg!(gst::LibraryError::Init, ["libavcodec has no usable H.264 decoder"]))?;
            *self.state.lock().unwrap() = State { decoder: Some(decoder), ..State::default() };
            Ok(())
        }

        fn stop(&self) -> Result<(), gst::ErrorMessage> {
            *self.state.lock().unwrap() = State::default();
            Ok(())
        }

        fn set_format(
            &self,
            input: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
        ) -> Result<(), gst::LoggableError> {
            self.state.lock().unwrap().input = Some(input.clone());
            Ok(())
        }

        fn handle_frame(&self, frame: gst_video::VideoCodecFrame) -> Result<gst::FlowSuccess, gst::FlowError> {
            let number = frame.system_frame_number() as i64;
            let input = frame.input_buffer_owned().ok_or(gst::FlowError::Error)?;
            drop(frame); // the base class keeps it until we finish it
            let map = input.map_readable().map_err(|_| gst::FlowError::Error)?;
            loop {
                let status = self.with_decoder(|d| d.send(&map, number))?;
                match status {
                    Status::Done => break,
                    Status::Again => self.push_decoded()?,
                    Status::Error(code) => {
                        // Broken data: count it against the base class's error budget (like
                        // avdec_h264) and drop the frame; too many in a row end the run.
                        if let Some(frame) = self.obj().frame(number as i32) {
                            self.obj().release_frame(frame);
                        }
                        return gst_video::video_decoder_error!(
                            self.obj(),
                            1,
                            gst::StreamError::Decode,
                            ["libavcodec could not decode an H.264 access unit (error {code})"]
                        );
                    }
                }
            }
            self.push_decoded()?;
            Ok(gst::FlowSuccess::Ok)
        }

        fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
            self.end_of_stream()
        }

        fn finish(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
            self.end_of_stream()
        }

        fn flush(&self) -> bool {
            let mut state = self.state.lock().unwrap();
            if let Some(decoder) = state.decoder.as_mut() {
                decoder.flush();
            }
            true
        }

        fn decide_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
            // Pictures go out in libavcodec's own memory, described by a GstVideoMeta (video
            // filters and converters take it); an element that does not gets copies.
            let video_meta = query.find_allocation_meta::<gst_video::VideoMeta>().is_some();
            gst::debug!(super::CAT, imp = self, "downstream takes GstVideoMeta: {video_meta}");
            self.state.lock().unwrap().video_meta = video_meta;
            self.parent_decide_allocation(query)
        }
    }

    impl H264Dec {
        fn with_decoder<R>(&self, f: impl FnOnce(&mut Decoder) -> R) -> Result<R, gst::FlowError> {
            let mut state = self.state.lock().unwrap();
            state.decoder.as_mut().map(f).ok_or(gst::FlowError::Flushing)
        }

        fn end_of_stream(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
            let flushed = self.with_decoder(|d| d.send(&[], 0))?;
            if let Status::Error(code) = flushed {
                gst::warning!(super::CAT, imp = self, "draining failed: {code}");
            }
            self.push_decoded()?;
            // Ready for more input after a drain (libavcodec needs a flush after end of stream).
            self.with_decoder(|d| d.flush())?;
            Ok(gst::FlowSuccess::Ok)
        }

        /// Push every picture libavcodec has ready.
        fn push_decoded(&self) -> Result<(), gst::FlowError> {
            loop {
                let received = self.with_decoder(|d| d.receive())?;
                let picture = match received {
                    Ok(Some(picture)) => picture,
                    Ok(None) => return Ok(()),
                    Err(code) => {
                        // Counted like a broken access unit; the next input tries again (never
                        // loop here: the error budget may be unlimited).
                        gst_video::video_decoder_error!(
                            self.obj(),
                            1,
                            gst::StreamError::Decode,
                            ["libavcodec failed while decoding H.264 (error {code})"]
                        )?;
                        return Ok(());
                    }
                };
                self.push_picture(picture)?;
            }
        }

        fn push_picture(&self, picture: Frame) -> Result<(), gst::FlowError> {
            let info = picture.info();
            let obj = self.obj();
            let Some(mut frame) = i32::try_from(info.pts).ok().and_then(|n| obj.frame(n)) else {
                gst::warning!(super::CAT, imp = self, "a decoded picture matches no input frame");
                return Ok(());
            };
            if info.format < 0 {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ["H.264 stream decodes to a pixel format other than 8-bit 4:2:0"]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
            let (width, height) = (info.width as u32, info.height as u32);
            self.negotiate_output(width, height)?;
            // Pictures libavcodec flags as damaged still go out, as with avdec_h264 and ffmpeg:
            // a glitch in one frame is better than a hole in the timeline.
            let buffer =
                if self.state.lock().unwrap().video_meta { wrap(picture, &info)? } else { copy(&picture, &info)? };
            frame.set_output_buffer(buffer);
            obj.finish_frame(frame)?;
            Ok(())
        }

        /// Output caps follow the input's (colorimetry, including full range, pixel aspect
        /// ratio and frame rate come from h264parse, which reads them from the SPS).
        fn negotiate_output(&self, width: u32, height: u32) -> Result<(), gst::FlowError> {
            let input = {
                let state = self.state.lock().unwrap();
                if state.output == Some((width, height)) {
                    return Ok(());
                }
                state.input.clone()
            };
            let obj = self.obj();
            let output = obj.set_output_state(gst_video::VideoFormat::I420, width, height, input.as_ref())?;
            obj.negotiate(output)?;
            self.state.lock().unwrap().output = Some((width, height));
            Ok(())
        }
    }

    /// One plane of a picture, kept alive by a shared reference to the picture.
    struct Plane {
        picture: std::sync::Arc<Frame>,
        ptr: *const u8,
        len: usize,
    }

    // SAFETY: the bytes are never written while any reference to the picture exists.
    unsafe impl Send for Plane {}

    impl AsRef<[u8]> for Plane {
        fn as_ref(&self) -> &[u8] {
            let _ = &self.picture;
            // SAFETY: ptr/len lie inside the picture's plane, alive while `picture` is.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// A buffer over the picture's three planes (no copy) with the strides in a GstVideoMeta.
    fn wrap(picture: Frame, info: &super::ffi::FrameInfo) -> Result<gst::Buffer, gst::FlowError> {
        let picture = std::sync::Arc::new(picture);
        let (width, height) = (info.width as u32, info.height as u32);
        let mut buffer = gst::Buffer::new();
        let mut offsets = [0usize; 3];
        let mut strides = [0i32; 3];
        let mut total = 0usize;
        {
            let buffer = buffer.get_mut().expect("a new buffer is writable");
            for plane in 0..3 {
                let rows = if plane == 0 { height } else { height.div_ceil(2) } as usize;
                let stride = info.linesize[plane];
                if stride <= 0 || info.data[plane].is_null() {
                    return Err(gst::FlowError::NotSupported);
                }
                let len = stride as usize * rows;
                offsets[plane] = total;
                strides[plane] = stride;
                total += len;
                let mem = gst::Memory::from_slice(Plane { picture: picture.clone(), ptr: info.data[plane], len });
                buffer.append_memory(mem);
            }
            gst_video::VideoMeta::add_full(
                buffer,
                gst_video::VideoFrameFlags::empty(),
                gst_video::VideoFormat::I420,
                width,
                height,
                &offsets,
                &strides,
            )
            .map_err(|_| gst::FlowError::Error)?;
        }
        Ok(buffer)
    }

    /// A standard-layout copy, for downstream elements that cannot read a GstVideoMeta.
    fn copy(picture: &Frame, info: &super::ffi::FrameInfo) -> Result<gst::Buffer, gst::FlowError> {
        let _ = picture;
        let video = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, info.width as u32, info.height as u32)
            .build()
            .map_err(|_| gst::FlowError::NotNegotiated)?;
        let buffer = gst::Buffer::with_size(video.size()).map_err(|_| gst::FlowError::Error)?;
        let mut frame =
            gst_video::VideoFrame::from_buffer_writable(buffer, &video).map_err(|_| gst::FlowError::Error)?;
        for plane in 0..3u32 {
            let p = plane as usize;
            let (w, h) = (frame.comp_width(plane) as usize, frame.comp_height(plane) as usize);
            let dst_stride = frame.plane_stride()[p] as usize;
            let dst = frame.plane_data_mut(plane).map_err(|_| gst::FlowError::Error)?;
            let src_stride = info.linesize[p] as usize;
            for row in 0..h {
                // SAFETY: the picture is alive (borrowed) and each row holds `w` bytes.
                let src = unsafe { std::slice::from_raw_parts(info.data[p].add(row * src_stride), w) };
                dst[row * dst_stride..row * dst_stride + w].copy_from_slice(src);
            }
        }
        Ok(frame.into_buffer())
    }
}

#[cfg(test)]
mod tests;
