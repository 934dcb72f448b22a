//! `encode`: H.264 (x264) and AAC, for MP4 that browsers play.
//!
//! The framework muxes the result into MP4 with the index at the front (`moov` before `mdat`).
//! Pictures are converted to 4:2:0 (`I420`) first: x264 would otherwise keep 4:4:4 input as
//! 4:4:4, which browsers refuse. x264's thread count is set explicitly, because its automatic
//! count looks at the host's CPUs and ignores a container's CPU quota.
//!
//! The encoder is `anbx264enc` (`x264enc.rs`): x264 with `x264enc`'s parameters, giving each
//! picture back to upstream as soon as x264 has copied it (21 MiB less peak memory per job than
//! `x264enc`, at the same CPU). `element = "x264enc"` runs GStreamer's own encoder instead, set
//! so that it writes the same stream.

use anb_pipeline::elements::{capsfilter, make, make_with, require};
use anb_pipeline::{BuildContext, ErrorCode, PipelineError, Problem, Role, Stage};
use gst::glib;
use serde::{Deserialize, Serialize};

mod ffi;
pub mod x264enc;

pub const DEFAULT_PRESET: Preset = Preset::Veryfast;
pub const DEFAULT_PROFILE: Profile = Profile::High;
pub const DEFAULT_CRF: u32 = 23;
pub const DEFAULT_AUDIO_BITRATE_KBPS: u32 = 128;
/// The longest lookahead x264 takes (`X264_LOOKAHEAD_MAX`), as `x264enc`'s `rc-lookahead`.
pub const MAX_LOOKAHEAD_FRAMES: u32 = 250;
/// x264's own default GOP length (x264enc would otherwise pick 10 s worth of frames).
const KEYINT_MAX_FRAMES: u32 = 250;

/// The AAC encoder. Its plugin (gst-libav) maps the whole libav stack when loaded.
const AAC_ENCODER: &str = "avenc_aac";

/// x264's speed presets, by x264's own names. The stage's `preset` and `anbx264enc`'s
/// `speed-preset` property (whose names are `x264enc`'s too), so a typo is an error in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, glib::Enum)]
#[serde(rename_all = "lowercase")]
#[enum_type(name = "AnbX264Preset")]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
    Placebo,
}

/// The H.264 profiles the output keeps to: the stage's `profile` and `anbx264enc`'s `profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, glib::Enum)]
#[serde(rename_all = "lowercase")]
#[enum_type(name = "AnbH264Profile")]
pub enum Profile {
    Baseline,
    Main,
    High,
}

impl Preset {
    /// x264's name for it (also the GObject nick).
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
            Preset::Slower => "slower",
            Preset::Veryslow => "veryslow",
            Preset::Placebo => "placebo",
        }
    }
}

impl Profile {
    /// The name in x264's API and in `video/x-h264` caps.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Main => "main",
            Profile::High => "high",
        }
    }
}

/// Which GStreamer element runs x264.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Element {
    /// Ours (`x264enc.rs`): each picture goes back upstream as soon as x264 has copied it.
    #[default]
    #[serde(rename = "anbx264enc")]
    Anbx264enc,
    /// GStreamer's, set to the same parameters: the fallback, and the bench's yardstick.
    #[serde(rename = "x264enc")]
    X264enc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Encode {
    /// x264 speed preset, `ultrafast` to `placebo`. Default `veryfast`.
    pub preset: Preset,
    /// Constant quality, 0 (lossless) to 51; lower is better. Default 23 unless
    /// `video_bitrate_kbps` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Average video bitrate in kbit/s, instead of `crf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_bitrate_kbps: Option<u32>,
    /// H.264 profile: `baseline`, `main` or `high` (default).
    pub profile: Profile,
    /// Encoder threads. Default: CPUs × 3 / 2 in integers, at least 1 (x264's own rule, applied
    /// to the CPUs the process may use rather than the host's): 1 on one CPU, where frame
    /// threads would only cost, 3 on two, so cores stay busy while threads wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Frames x264's rate control and frame-type decisions look ahead, 0 to 250. Default: the
    /// preset's (10 for `veryfast`). Each frame of lookahead holds one more picture, 3.3 MB at
    /// 720p: fewer frames fit a job in less memory, at some quality per bit (docs/capacity.md,
    /// "What stands between a job and 160 and 120 MiB", has the measured trade-off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookahead_frames: Option<u32>,
    /// AAC bitrate in kbit/s. Default 128.
    pub audio_bitrate_kbps: u32,
    /// Keep the input's sound as it is when it already fits the output (AAC-LC, at most two
    /// channels) and no stage changes it: no decoding, no re-encoding, no generation loss, and
    /// `audio_bitrate_kbps` does not apply. Default `true`.
    pub audio_passthrough: bool,
    /// The x264 element: `anbx264enc` (default) or GStreamer's `x264enc` with the same
    /// parameters (more memory; see `x264enc.rs` for the measured difference).
    pub element: Element,
}

impl Default for Encode {
    fn default() -> Self {
        Encode {
            preset: DEFAULT_PRESET,
            crf: None,
            video_bitrate_kbps: None,
            profile: DEFAULT_PROFILE,
            threads: None,
            lookahead_frames: None,
            audio_bitrate_kbps: DEFAULT_AUDIO_BITRATE_KBPS,
            audio_passthrough: true,
            element: Element::default(),
        }
    }
}

impl Stage for Encode {
    fn role(&self) -> Role {
        Role::Encode
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(crf) = self.crf {
            problems.extend(Problem::out_of_range("crf", crf, 0..=51));
            if self.video_bitrate_kbps.is_some() {
                problems.push(Problem::field("crf", "set either `crf` or `video_bitrate_kbps`, not both"));
            }
        }
        problems.extend(
            self.video_bitrate_kbps.and_then(|kbps| Problem::out_of_range("video_bitrate_kbps", kbps, 100..=100_000)),
        );
        problems.extend(self.threads.and_then(|t| Problem::out_of_range("threads", t, 1..=64)));
        problems.extend(
            self.lookahead_frames.and_then(|f| Problem::out_of_range("lookahead_frames", f, 0..=MAX_LOOKAHEAD_FRAMES)),
        );
        problems.extend(Problem::out_of_range("audio_bitrate_kbps", self.audio_bitrate_kbps, 16..=512));
        problems
    }

    fn video(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        let threads = self.threads.unwrap_or((ctx.threads as u32 * 3 / 2).max(1));
        let convert_threads = ctx.threads.to_string();
        let x264 = match self.element {
            Element::Anbx264enc => {
                x264enc::register()
                    .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("registering the encoder: {e}")))?;
                gst::ElementFactory::make(x264enc::ELEMENT_NAME)
                    .property("speed-preset", self.preset)
                    .property("quantizer", self.crf.unwrap_or(DEFAULT_CRF))
                    .property("bitrate", self.video_bitrate_kbps.unwrap_or(0))
                    .property("profile", self.profile)
                    .property("key-int-max", KEYINT_MAX_FRAMES)
                    .property("threads", threads)
                    .property("rc-lookahead", self.lookahead_frames.map_or(-1, |frames| frames as i32))
                    .build()
                    .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("creating the encoder: {e}")))?
            }
            Element::X264enc => self.stock_x264enc(threads)?,
        };
        Ok(vec![
            make_with("videoconvert", &[("n-threads", &convert_threads)])?,
            capsfilter("video/x-raw,format=I420")?,
            x264,
            // Byte-stream, as `anbx264enc` writes it: `x264enc` would otherwise pick avcC, and
            // the two elements would reach `h264parse` in different forms.
            capsfilter(&format!(
                "video/x-h264,profile={},stream-format=byte-stream,alignment=au",
                self.profile.as_str()
            ))?,
            make("h264parse")?,
        ])
    }

    fn audio(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        if ctx.dry_run {
            // Checked without loading the plugin: a run whose sound passes through never needs it.
            return require(AAC_ENCODER).map(|()| Vec::new());
        }
        let bitrate = (self.audio_bitrate_kbps * 1000).to_string();
        Ok(vec![make("audioconvert")?, make("audioresample")?, make_with(AAC_ENCODER, &[("bitrate", &bitrate)])?])
    }

    fn passes_encoded_audio(&self, audio: &gst::StructureRef, _ctx: &BuildContext) -> bool {
        self.audio_passthrough && fits_output(audio)
    }
}

impl Encode {
    /// GStreamer's `x264enc` with the parameters `anbx264enc` sets: constant quality is its
    /// `pass=qual` with no VBV (x264enc would otherwise cap the rate at its default 2 Mbit/s), a
    /// bitrate its `pass=cbr` with its 0.6 s VBV; no access unit delimiters.
    fn stock_x264enc(&self, threads: u32) -> Result<gst::Element, PipelineError> {
        let (pass, rate, vbv_ms) = match self.video_bitrate_kbps {
            Some(kbps) => ("cbr", ("bitrate", kbps), "600"),
            None => ("qual", ("quantizer", self.crf.unwrap_or(DEFAULT_CRF)), "0"),
        };
        let (rate_value, threads, keyint) = (rate.1.to_string(), threads.to_string(), KEYINT_MAX_FRAMES.to_string());
        let lookahead = self.lookahead_frames.map(|frames| frames.to_string());
        let mut properties = vec![
            ("speed-preset", self.preset.as_str()),
            ("pass", pass),
            (rate.0, &rate_value),
            ("vbv-buf-capacity", vbv_ms),
            ("key-int-max", &keyint),
            ("threads", &threads),
            ("aud", "false"),
        ];
        // Only when set: x264enc's own default (40) would replace the preset's.
        properties.extend(lookahead.as_deref().map(|frames| ("rc-lookahead", frames)));
        make_with("x264enc", &properties)
    }
}

/// Whether encoded sound can go into the output as it is: MPEG-4 AAC-LC in raw frames (as MP4
/// and Matroska store them, with the decoder's configuration) with one or two channels.
fn fits_output(audio: &gst::StructureRef) -> bool {
    audio.name() == "audio/mpeg"
        && audio.get::<i32>("mpegversion").is_ok_and(|v| v == 4)
        && audio.get::<&str>("stream-format").is_ok_and(|f| f == "raw")
        && audio.get::<&str>("profile").is_ok_and(|p| p == "lc")
        && audio.has_field("codec_data")
        && matches!(audio.get::<i32>("channels"), Ok(1 | 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use gst::prelude::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Encode {
            crf: Some(20),
            threads: Some(2),
            lookahead_frames: Some(6),
            audio_passthrough: false,
            preset: Preset::Slow,
            profile: Profile::Main,
            element: Element::X264enc,
            ..Encode::default()
        });
        assert_rejects_unknown_field::<Encode>("bitrate = 1000");
    }

    #[test]
    fn crf_and_bitrate_together_and_bad_values_are_rejected() {
        let e =
            Encode { crf: Some(60), video_bitrate_kbps: Some(2000), lookahead_frames: Some(251), ..Encode::default() };
        let fields: Vec<_> = e.validate().into_iter().filter_map(|p| p.field).collect();
        assert_eq!(fields, ["crf", "crf", "lookahead_frames"]);
        assert!(Encode { lookahead_frames: Some(MAX_LOOKAHEAD_FRAMES), ..Encode::default() }.validate().is_empty());
        for typo in ["preset = \"quick\"", "profile = \"extended\"", "element = \"openh264enc\""] {
            let err = toml::from_str::<Encode>(typo).expect_err(typo).to_string();
            assert!(err.contains("unknown variant"), "{typo}: {err}");
        }
    }

    #[test]
    fn only_aac_lc_in_one_or_two_channels_passes_through() {
        gst::init().unwrap();
        let aac = |extra: &str| -> gst::Caps {
            format!("audio/mpeg,mpegversion=4,stream-format=raw,profile=lc,codec_data=(buffer)1190,rate=48000,channels=2{extra}")
                .parse()
                .unwrap()
        };
        let ctx = BuildContext::with_threads(1);
        let passes = |stage: &Encode, caps: gst::Caps| stage.passes_encoded_audio(caps.structure(0).unwrap(), &ctx);
        let stage = Encode::default();
        assert!(passes(&stage, aac("")));
        assert!(passes(&stage, aac(",channels=1")));
        assert!(!passes(&stage, aac(",channels=6")), "more than two channels");
        assert!(!passes(&stage, aac(",profile=he-aac")), "HE-AAC");
        assert!(!passes(&stage, aac(",stream-format=adts")), "ADTS frames");
        assert!(!passes(&stage, aac(",mpegversion=2")), "MPEG-2 AAC");
        assert!(!passes(&stage, "audio/mpeg,mpegversion=1,layer=3,rate=44100,channels=2".parse().unwrap()), "MP3");
        assert!(!passes(&stage, "audio/x-raw,format=S16LE,rate=48000,channels=2".parse().unwrap()), "decoded sound");
        assert!(!passes(&Encode { audio_passthrough: false, ..Encode::default() }, aac("")), "switched off");
    }

    #[test]
    fn the_dry_build_checks_the_aac_encoder_without_creating_it() {
        gst::init().unwrap();
        let dry = BuildContext { dry_run: true, ..BuildContext::with_threads(1) };
        assert!(Encode::default().audio(&dry).unwrap().is_empty());
        let real = Encode::default().audio(&BuildContext::with_threads(1)).unwrap();
        assert_eq!(real.last().and_then(|e| e.factory()).map(|f| f.name().to_string()).as_deref(), Some(AAC_ENCODER));
    }

    #[test]
    fn encodes_4_4_4_input_as_4_2_0_high_profile() {
        gst::init().unwrap();
        for element in [Element::Anbx264enc, Element::X264enc] {
            let encode = Encode { element, ..Encode::default() };
            let encoder = encode.video(&BuildContext::with_threads(1)).unwrap()[2].factory().unwrap().name();
            assert_eq!(encoder, if element == Element::X264enc { "x264enc" } else { x264enc::ELEMENT_NAME });
            encodes_as_4_2_0_high_profile(&encode);
        }
    }

    /// The stage sets GStreamer's encoder so that it writes our element's stream: on one thread
    /// (where x264 is reproducible) the two are the same bytes, at a quality, at a bitrate and
    /// with a lookahead of its own; without one, both look ahead as far as the preset does.
    #[test]
    fn both_elements_write_the_same_stream_on_one_thread() {
        gst::init().unwrap();
        let source = "videotestsrc num-buffers=30 pattern=ball motion=sweep animation-mode=frames \
            ! video/x-raw,format=I420,width=160,height=120,framerate=30/1,colorimetry=bt709,pixel-aspect-ratio=1/1";
        for (video_bitrate_kbps, lookahead_frames, options) in [
            (None, None, "rc_lookahead=10 "),
            (Some(300), None, "rc_lookahead=10 "),
            (None, Some(4), "rc_lookahead=4 "),
        ] {
            let stream = |element| {
                let encode =
                    Encode { element, threads: Some(1), video_bitrate_kbps, lookahead_frames, ..Encode::default() };
                let samples = samples_through(source, encode.video(&BuildContext::with_threads(1)).unwrap());
                samples.iter().map(|s| s.buffer().unwrap().map_readable().unwrap().to_vec()).collect::<Vec<_>>()
            };
            let ours = stream(Element::Anbx264enc);
            assert_eq!(ours.len(), 30);
            // x264 writes its options into the first access unit (an SEI message).
            assert!(String::from_utf8_lossy(&ours[0]).contains(options), "{options} ({video_bitrate_kbps:?})");
            let case = (video_bitrate_kbps, lookahead_frames);
            assert!(ours == stream(Element::X264enc), "x264enc writes anbx264enc's stream ({case:?})");
        }
    }

    fn encodes_as_4_2_0_high_profile(encode: &Encode) {
        gst::init().unwrap();
        let elements = encode.video(&BuildContext::with_threads(1)).unwrap();
        let samples =
            samples_through("videotestsrc num-buffers=10 ! video/x-raw,format=Y444,width=64,height=64", elements);
        let caps = samples[0].caps().unwrap().structure(0).unwrap().to_owned();
        let frames = samples.len();
        assert_eq!(caps.name(), "video/x-h264");
        assert_eq!(caps.get::<&str>("profile").unwrap(), "high");
        assert_eq!(caps.get::<&str>("chroma-format").unwrap(), "4:2:0");
        assert_eq!(frames, 10);
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("crf = 20", Encode { crf: Some(20), ..Encode::default() });
        let encode = Encode::default();
        assert_eq!(
            (encode.preset, encode.profile, encode.element),
            (DEFAULT_PRESET, DEFAULT_PROFILE, Element::Anbx264enc)
        );
        assert!(encode.audio_passthrough);
    }
}
