//! `anbx264enc`: H.264 encoding on libx264 that lets each picture go as soon as x264 has it.
//!
//! GStreamer's `x264enc` keeps every input picture mapped until its packet comes out: the
//! lookahead, B-frame delay and frame threads hold 13 to 30 of them (20 to 40 MB at 720p), and it
//! asks upstream for a pool of that many buffers. This element releases each picture once
//! `x264_encoder_encode` has copied it (x264 always copies its input), as ffmpeg's wrapper does,
//! so upstream cycles through a handful of buffers. Against `x264enc` set to the same parameters
//! (the stage's `element = "x264enc"`) on the reference job (`benches/stock-elements.sh`: the
//! 60 s 1080p input through the showcase pipeline, 2 threads, 5 alternating pairs a run, 2 runs,
//! 2026-12-07): peak memory 195.6 against 216.8 MiB (−21.2 MiB), the same CPU (−0.6 %) and wall
//! time (−1.1 %), and the same output (SSIM 0.98634, 16.06 MB both). It was written hoping the
//! smaller working set would also speed up the codecs; it does not.
//!
//! The x264 parameters are set exactly as `x264enc` sets them (see `csrc/x264enc.c`), so the
//! bitstream is the same; tests compare the two byte for byte on one thread (with frame threads x264
//! is not reproducible run to run, so there they compare options, timing and size). Output is byte-stream, one
//! access unit per buffer, with SPS and PPS before every keyframe; `h264parse` converts for MP4.

use std::sync::{LazyLock, Mutex, Once};

use super::ffi::{Encoder, Params};
use super::{Preset, Profile, MAX_LOOKAHEAD_FRAMES};
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

// The properties' defaults are `x264enc`'s, as are their names where both have one.
const DEFAULT_SPEED_PRESET: Preset = Preset::Medium;
const DEFAULT_QUANTIZER: u32 = 21;
const DEFAULT_BITRATE: u32 = 0;
const DEFAULT_KEY_INT_MAX: u32 = 250;
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_PROFILE: Profile = Profile::High;
/// -1: the speed preset's lookahead (x264enc's own default is 40 frames, but it only applies it
/// when set, so with a preset both elements look ahead as far as the preset does).
const DEFAULT_RC_LOOKAHEAD: i32 = -1;

/// The element's settings (its properties).
#[derive(Debug, Clone)]
struct Settings {
    speed_preset: Preset,
    quantizer: u32,
    bitrate: u32,
    key_int_max: u32,
    threads: u32,
    profile: Profile,
    rc_lookahead: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            speed_preset: DEFAULT_SPEED_PRESET,
            quantizer: DEFAULT_QUANTIZER,
            bitrate: DEFAULT_BITRATE,
            key_int_max: DEFAULT_KEY_INT_MAX,
            threads: DEFAULT_THREADS,
            profile: DEFAULT_PROFILE,
            rc_lookahead: DEFAULT_RC_LOOKAHEAD,
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

/// A whole-number property in `range`.
fn uint(name: &str, blurb: &str, range: std::ops::RangeInclusive<u32>, default: u32) -> glib::ParamSpec {
    glib::ParamSpecUInt::builder(name)
        .blurb(blurb)
        .minimum(*range.start())
        .maximum(*range.end())
        .default_value(default)
        .build()
}

/// What x264 is opened with for these settings and this picture format.
fn params(settings: &Settings, info: &gst_video::VideoInfo) -> Params {
    let colorimetry = info.colorimetry();
    Params {
        width: info.width(),
        height: info.height(),
        fps: (info.fps().numer(), info.fps().denom()),
        par: (info.par().numer(), info.par().denom()),
        preset: settings.speed_preset,
        profile: settings.profile,
        crf: settings.quantizer as f32,
        bitrate_kbps: settings.bitrate,
        keyint_max: settings.key_int_max,
        threads: settings.threads,
        rc_lookahead: u32::try_from(settings.rc_lookahead).ok(),
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
        params: Option<Params>,
        info: Option<gst_video::VideoInfo>,
        /// For frames without a timestamp: x264 needs increasing ones.
        next_pts: i64,
    }

    #[derive(Default)]
    pub struct X264Enc {
        settings: Mutex<Settings>,
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
                vec![
                    glib::ParamSpecEnum::builder_with_default("speed-preset", DEFAULT_SPEED_PRESET)
                        .blurb("x264 preset, ultrafast to placebo")
                        .build(),
                    uint(
                        "quantizer",
                        "Constant quality (x264's CRF), used when bitrate is 0",
                        0..=51,
                        DEFAULT_QUANTIZER,
                    ),
                    uint(
                        "bitrate",
                        "Average bitrate in kbit/s with a 0.6 s VBV (0: constant quality)",
                        0..=2_000_000,
                        DEFAULT_BITRATE,
                    ),
                    uint(
                        "key-int-max",
                        "Maximum distance between keyframes, in frames",
                        1..=u32::MAX,
                        DEFAULT_KEY_INT_MAX,
                    ),
                    uint("threads", "Encoder threads (0: x264's count from the host's CPUs)", 0..=64, DEFAULT_THREADS),
                    glib::ParamSpecEnum::builder_with_default("profile", DEFAULT_PROFILE)
                        .blurb("H.264 profile the stream keeps to")
                        .build(),
                    glib::ParamSpecInt::builder("rc-lookahead")
                        .blurb("Frames the rate control and frame-type decisions look ahead (-1: the preset's)")
                        .minimum(-1)
                        .maximum(MAX_LOOKAHEAD_FRAMES as i32)
                        .default_value(DEFAULT_RC_LOOKAHEAD)
                        .build(),
                ]
            });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut settings = self.settings.lock().unwrap();
            const CHECKED: &str = "type checked by GObject";
            match pspec.name() {
                "speed-preset" => settings.speed_preset = value.get().expect(CHECKED),
                "quantizer" => settings.quantizer = value.get().expect(CHECKED),
                "bitrate" => settings.bitrate = value.get().expect(CHECKED),
                "key-int-max" => settings.key_int_max = value.get().expect(CHECKED),
                "threads" => settings.threads = value.get().expect(CHECKED),
                "profile" => settings.profile = value.get().expect(CHECKED),
                "rc-lookahead" => settings.rc_lookahead = value.get().expect(CHECKED),
                other => unreachable!("no property {other}"),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let settings = self.settings.lock().unwrap();
            match pspec.name() {
                "speed-preset" => settings.speed_preset.to_value(),
                "quantizer" => settings.quantizer.to_value(),
                "bitrate" => settings.bitrate.to_value(),
                "key-int-max" => settings.key_int_max.to_value(),
                "threads" => settings.threads.to_value(),
                "profile" => settings.profile.to_value(),
                "rc-lookahead" => settings.rc_lookahead.to_value(),
                other => unreachable!("no property {other}"),
            }
        }
    }

    impl GstObjectImpl for X264Enc {}

    impl ElementImpl for X264Enc {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                anb_pipeline::elements::metadata(
                    "ANB x264 encoder",
                    "Codec/Encoder/Video",
                    "Encodes I420 to H.264 with libx264, releasing each picture once x264 has copied it",
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
                anb_pipeline::elements::sink_and_src_templates(&sink, &src)
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
            let settings = self.settings.lock().unwrap().clone();
            let params = params(&settings, &info);
            if self.state.lock().unwrap().params.as_ref() == Some(&params) {
                return Ok(());
            }
            // New picture format mid-stream: what the old encoder holds goes out first.
            if self.state.lock().unwrap().encoder.is_some() {
                self.drain().map_err(|e| gst::loggable_error!(super::CAT, "draining before new caps: {e:?}"))?;
            }
            let mut encoder = Encoder::open(&params).ok_or_else(|| {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    [
                        "x264 refuses preset `{}` with profile `{}` at {}x{}",
                        params.preset.as_str(),
                        params.profile.as_str(),
                        params.width,
                        params.height
                    ]
                );
                gst::loggable_error!(super::CAT, "x264 refused the settings")
            })?;
            let delayed = encoder.max_delayed_frames() as u64;
            {
                let mut state = self.state.lock().unwrap();
                state.encoder = Some(encoder);
                state.params = Some(params);
                state.info = Some(info.clone());
            }
            let caps = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .field("profile", settings.profile.as_str())
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
            state.encoder = state.params.as_ref().and_then(Encoder::open);
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

#[cfg(test)]
mod tests;
