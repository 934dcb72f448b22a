//! `anbx264enc`: H.264 encoding on libx264 that lets each picture go as soon as x264 has it.
//!
//! GStreamer's `x264enc` keeps every input picture mapped until its packet comes out: the
//! lookahead, B-frame delay and frame threads hold 13 to 30 of them (20 to 40 MB at 720p), and it
//! asks upstream for a pool of that many buffers. This element releases each picture once
//! `x264_encoder_encode` has copied it (x264 always copies its input), as ffmpeg's wrapper does,
//! so upstream cycles through a handful of buffers: peak memory of a 1080p-to-720p job 189 -> 176
//! MiB on one thread, 259 -> 238 MiB on two. It was written hoping the smaller working set would
//! also speed up the codecs; measured on one pinned CPU it does not (same CPU time within 1 %).
//!
//! The x264 parameters are set exactly as `x264enc` sets them (see `csrc/x264enc.c`), so the
//! bitstream is the same; tests compare the two byte for byte on one thread (with frame threads x264
//! is not reproducible run to run, so there they compare options, timing and size). Output is byte-stream, one
//! access unit per buffer, with SPS and PPS before every keyframe; `h264parse` converts for MP4.

use std::sync::{LazyLock, Mutex, Once};

use super::ffi::{Encoder, Settings};
use gst::glib;
use gst::glib::translate::ToGlibPtr;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

pub const ELEMENT_NAME: &str = "anbx264enc";

/// The element's own debug category (`GST_DEBUG=anbx264enc:5`).
static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(ELEMENT_NAME, gst::DebugColorFlags::empty(), Some("H.264 encoding on libx264 (anb-stages)"))
});

/// Register the element with GStreamer (once per process).
pub fn register() -> Result<(), glib::BoolError> {
    static ONCE: Once = Once::new();
    anb_pipeline::elements::register_once(&ONCE, ELEMENT_NAME, gst::Rank::NONE, X264Enc::static_type)
}

glib::wrapper! {
    pub struct X264Enc(ObjectSubclass<imp::X264Enc>)
        @extends gst_video::VideoEncoder, gst::Element, gst::Object;
}

/// The element's properties, named as `x264enc`'s where both have one.
#[derive(Debug, Clone)]
struct Properties {
    speed_preset: String,
    quantizer: u32,
    bitrate: u32,
    key_int_max: u32,
    threads: u32,
    profile: String,
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            speed_preset: "medium".into(),
            quantizer: 21,
            bitrate: 0,
            key_int_max: 250,
            threads: 0,
            profile: "high".into(),
        }
    }
}

/// x264's `i_chroma_loc` for a GStreamer chroma siting, as `x264enc` maps it.
fn chroma_loc(site: gst_video::VideoChromaSite) -> i32 {
    use gst_video::VideoChromaSite as Site;
    if site == Site::JPEG {
        1
    } else if site == Site::DV {
        2
    } else if site == Site::V_COSITED {
        3
    } else {
        0
    }
}

fn settings(props: &Properties, info: &gst_video::VideoInfo) -> Settings {
    let colorimetry = info.colorimetry();
    Settings {
        width: info.width(),
        height: info.height(),
        fps: (info.fps().numer(), info.fps().denom()),
        par: (info.par().numer(), info.par().denom()),
        preset: props.speed_preset.clone(),
        profile: props.profile.clone(),
        crf: props.quantizer as f32,
        bitrate_kbps: props.bitrate,
        keyint_max: props.key_int_max,
        threads: props.threads,
        colorprim: colorimetry.primaries().to_iso() as i32,
        transfer: colorimetry.transfer().to_iso() as i32,
        colmatrix: colorimetry.matrix().to_iso() as i32,
        fullrange: colorimetry.range() == gst_video::VideoColorRange::Range0_255,
        chroma_loc: chroma_loc(info.chroma_site()),
    }
}

/// A packet copied out of x264, ready to go out with its frame.
struct Output {
    buffer: gst::Buffer,
    pts: i64,
    dts: i64,
    keyframe: bool,
    id: isize,
}

mod imp {
    use super::*;

    #[derive(Default)]
    struct State {
        encoder: Option<Encoder>,
        settings: Option<Settings>,
        info: Option<gst_video::VideoInfo>,
        /// For frames without a timestamp: x264 needs increasing ones.
        next_pts: i64,
    }

    #[derive(Default)]
    pub struct X264Enc {
        props: Mutex<Properties>,
        state: Mutex<State>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for X264Enc {
        const NAME: &'static str = "AnbX264Enc";
        type Type = super::X264Enc;
        type ParentType = gst_video::VideoEncoder;

        fn class_init(klass: &mut Self::Class) {
            // No metas to copy from pictures to packets (the input is released before the
            // packet exists): without this the base class logs a FIXME for every frame.
            // SAFETY: the class struct starts with GstVideoEncoderClass; set during class init.
            unsafe {
                let klass = &mut *(klass as *mut Self::Class as *mut gst_video::ffi::GstVideoEncoderClass);
                klass.transform_meta = None;
            }
        }
    }

    impl ObjectImpl for X264Enc {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                let defaults = Properties::default();
                vec![
                    glib::ParamSpecString::builder("speed-preset")
                        .blurb("x264 preset, ultrafast to placebo")
                        .default_value(Some(defaults.speed_preset.as_str()))
                        .build(),
                    glib::ParamSpecUInt::builder("quantizer")
                        .blurb("Constant quality (x264's CRF), used when bitrate is 0")
                        .maximum(51)
                        .default_value(defaults.quantizer)
                        .build(),
                    glib::ParamSpecUInt::builder("bitrate")
                        .blurb("Average bitrate in kbit/s with a 0.6 s VBV (0: constant quality)")
                        .maximum(2_000_000)
                        .default_value(defaults.bitrate)
                        .build(),
                    glib::ParamSpecUInt::builder("key-int-max")
                        .blurb("Maximum distance between keyframes, in frames")
                        .minimum(1)
                        .default_value(defaults.key_int_max)
                        .build(),
                    glib::ParamSpecUInt::builder("threads")
                        .blurb("Encoder threads (0: x264's count from the host's CPUs)")
                        .maximum(64)
                        .default_value(defaults.threads)
                        .build(),
                    glib::ParamSpecString::builder("profile")
                        .blurb("H.264 profile the stream keeps to: baseline, main or high")
                        .default_value(Some(defaults.profile.as_str()))
                        .build(),
                ]
            });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut props = self.props.lock().unwrap();
            let text = || value.get::<Option<String>>().ok().flatten().unwrap_or_default();
            let number = || value.get::<u32>().unwrap_or(0);
            match pspec.name() {
                "speed-preset" => props.speed_preset = text(),
                "quantizer" => props.quantizer = number(),
                "bitrate" => props.bitrate = number(),
                "key-int-max" => props.key_int_max = number(),
                "threads" => props.threads = number(),
                "profile" => props.profile = text(),
                other => unreachable!("no property {other}"),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let props = self.props.lock().unwrap();
            match pspec.name() {
                "speed-preset" => props.speed_preset.to_value(),
                "quantizer" => props.quantizer.to_value(),
                "bitrate" => props.bitrate.to_value(),
                "key-int-max" => props.key_int_max.to_value(),
                "threads" => props.threads.to_value(),
                "profile" => props.profile.to_value(),
                other => unreachable!("no property {other}"),
            }
        }
    }

    impl GstObjectImpl for X264Enc {}

    impl ElementImpl for X264Enc {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "ANB x264 encoder",
                    "Codec/Encoder/Video",
                    "Encodes I420 to H.264 with libx264, releasing each picture once x264 has copied it",
                    "ANB Video",
                )
            });
            Some(&*META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let sink = gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .width_range(16..=16384)
                    .height_range(16..=16384)
                    .build();
                let src = gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .field("profile", gst::List::new(["high", "main", "baseline"]))
                    .build();
                vec![
                    gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &sink).unwrap(),
                    gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &src).unwrap(),
                ]
            });
            TEMPLATES.as_ref()
        }
    }

    impl VideoEncoderImpl for X264Enc {
        fn start(&self) -> Result<(), gst::ErrorMessage> {
            // Room below the first timestamp for the first decoding timestamps, which come before
            // it with B-frames (as x264enc does).
            self.obj().set_min_pts(gst::ClockTime::from_seconds(60 * 60 * 1000));
            *self.state.lock().unwrap() = State::default();
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
            let info = input.info().clone();
            let props = self.props.lock().unwrap().clone();
            let settings = settings(&props, &info);
            if self.state.lock().unwrap().settings.as_ref() == Some(&settings) {
                return Ok(());
            }
            // New picture format mid-stream: what the old encoder holds goes out first.
            if self.state.lock().unwrap().encoder.is_some() {
                self.drain().map_err(|e| gst::loggable_error!(super::CAT, "draining before new caps: {e:?}"))?;
            }
            let mut encoder = Encoder::open(&settings).ok_or_else(|| {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    [
                        "x264 refuses preset `{}` with profile `{}` at {}x{}",
                        settings.preset,
                        settings.profile,
                        settings.width,
                        settings.height
                    ]
                );
                gst::loggable_error!(super::CAT, "x264 refused the settings")
            })?;
            let delayed = encoder.max_delayed_frames() as u64;
            {
                let mut state = self.state.lock().unwrap();
                state.encoder = Some(encoder);
                state.settings = Some(settings);
                state.info = Some(info.clone());
            }
            let caps = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .field("profile", props.profile.as_str())
                .build();
            let obj = self.obj();
            let output =
                obj.set_output_state(caps, Some(input)).map_err(|e| gst::loggable_error!(super::CAT, "{e:?}"))?;
            obj.negotiate(output).map_err(|e| gst::loggable_error!(super::CAT, "negotiating: {e:?}"))?;
            let fps = info.fps();
            let (numer, denom) = if fps.numer() > 0 { (fps.numer() as u64, fps.denom() as u64) } else { (25, 1) };
            let latency = gst::ClockTime::SECOND.mul_div_ceil(denom * delayed, numer).unwrap_or(gst::ClockTime::ZERO);
            obj.set_latency(latency, Some(latency));
            Ok(())
        }

        fn handle_frame(&self, mut frame: gst_video::VideoCodecFrame) -> Result<gst::FlowSuccess, gst::FlowError> {
            let id = frame.system_frame_number() as isize;
            let force_idr = frame.flags().contains(gst_video::VideoCodecFrameFlags::FORCE_KEYFRAME);
            // The frame's timestamp, not the buffer's: the base class adds the room asked for
            // with `set_min_pts`.
            let pts = frame.pts();
            let input = frame.input_buffer_owned().ok_or(gst::FlowError::Error)?;
            release_input(&mut frame);
            drop(frame);
            let output = {
                let mut state = self.state.lock().unwrap();
                let state = &mut *state;
                let info = state.info.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
                let pts = pts.map_or(state.next_pts, |pts| pts.nseconds() as i64);
                state.next_pts = pts + 1;
                let picture = gst_video::VideoFrameRef::from_buffer_ref_readable(input.as_ref(), info)
                    .map_err(|_| gst::FlowError::Error)?;
                let planes = [0, 1, 2].map(|p| picture.plane_data(p).map_or(std::ptr::null(), |d| d.as_ptr()));
                let strides = [0, 1, 2].map(|p| picture.plane_stride()[p]);
                if planes.iter().any(|p| p.is_null()) {
                    return Err(gst::FlowError::Error);
                }
                let encoder = state.encoder.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
                encode(encoder, Some((planes, strides)), pts, id, force_idr)
            };
            // x264 has its own copy now: the picture goes back to upstream's pool.
            drop(input);
            match output {
                Ok(Some(output)) => self.push(output),
                Ok(None) => Ok(gst::FlowSuccess::Ok),
                Err(code) => self.encode_failed(code),
            }
        }

        fn finish(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
            self.drain()
        }

        fn flush(&self) -> bool {
            // x264 cannot drop what it holds: a fresh encoder replaces it (the base class drops
            // the frames).
            let mut state = self.state.lock().unwrap();
            state.encoder = None;
            state.encoder = state.settings.as_ref().and_then(Encoder::open);
            true
        }

        fn propose_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
            // Any strides will do; and no pool is proposed, so upstream keeps only the few
            // buffers in flight (x264enc asks for as many as x264 may hold).
            query.add_allocation_meta::<gst_video::VideoMeta>(None);
            self.parent_propose_allocation(query)
        }
    }

    impl X264Enc {
        /// Everything x264 still holds goes out (end of stream, or new caps).
        fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
            loop {
                let output = {
                    let mut state = self.state.lock().unwrap();
                    let Some(encoder) = state.encoder.as_mut() else { return Ok(gst::FlowSuccess::Ok) };
                    if encoder.delayed_frames() == 0 {
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    encode(encoder, None, 0, 0, false)
                };
                match output {
                    Ok(Some(output)) => {
                        self.push(output)?;
                    }
                    Ok(None) => {}
                    Err(code) => return self.encode_failed(code),
                }
            }
        }

        fn push(&self, output: Output) -> Result<gst::FlowSuccess, gst::FlowError> {
            let obj = self.obj();
            let Some(mut frame) = i32::try_from(output.id).ok().and_then(|id| obj.frame(id)) else {
                gst::warning!(super::CAT, imp = self, "an encoded picture matches no input frame");
                return Ok(gst::FlowSuccess::Ok);
            };
            frame.set_output_buffer(output.buffer);
            frame.set_pts(u64::try_from(output.pts).ok().map(gst::ClockTime::from_nseconds));
            frame.set_dts(u64::try_from(output.dts).ok().map(gst::ClockTime::from_nseconds));
            if output.keyframe {
                frame.set_flags(gst_video::VideoCodecFrameFlags::SYNC_POINT);
            }
            obj.finish_frame(frame)
        }

        fn encode_failed(&self, code: i32) -> Result<gst::FlowSuccess, gst::FlowError> {
            gst::element_imp_error!(self, gst::StreamError::Encode, ["x264 failed to encode a picture (error {code})"]);
            Err(gst::FlowError::Error)
        }
    }

    /// Drops the base class's reference to the frame's input buffer: the picture's memory goes
    /// back to its pool once the caller's reference is gone, instead of when the packet comes out.
    /// The base class allows a frame without an input buffer (it then copies no metas to the
    /// output; a picture's metas do not apply to a compressed packet anyway).
    fn release_input(frame: &mut gst_video::VideoCodecFrame) {
        let raw: *mut gst_video::ffi::GstVideoCodecFrame = frame.to_glib_none().0;
        // SAFETY: the frame is valid and we hold the stream lock (VideoCodecFrame takes it);
        // the field owns one reference, released here exactly once.
        unsafe {
            let buffer = std::mem::replace(&mut (*raw).input_buffer, std::ptr::null_mut());
            if !buffer.is_null() {
                gst::ffi::gst_mini_object_unref(buffer.cast());
            }
        }
    }

    fn encode(
        encoder: &mut Encoder,
        picture: Option<([*const u8; 3], [i32; 3])>,
        pts: i64,
        id: isize,
        force_idr: bool,
    ) -> Result<Option<Output>, i32> {
        Ok(encoder.encode(picture, pts, id, force_idr)?.map(|packet| Output {
            buffer: gst::Buffer::from_mut_slice(packet.data.to_vec()),
            pts: packet.pts,
            dts: packet.dts,
            keyframe: packet.keyframe,
            id: packet.id,
        }))
    }
}
