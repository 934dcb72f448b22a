//! `encode`: H.264 (x264) and AAC, for MP4 that browsers play.
//!
//! The framework muxes the result into MP4 with the index at the front (`moov` before `mdat`).
//! Pictures are converted to 4:2:0 (`I420`) first: x264 would otherwise keep 4:4:4 input as
//! 4:4:4, which browsers refuse. x264's thread count is set explicitly, because its automatic
//! count looks at the host's CPUs and ignores a container's CPU quota.
//!
//! The encoder is `anbx264enc` (`x264enc.rs`): x264 with `x264enc`'s parameters, giving each
//! picture back to upstream as soon as x264 has copied it.

use anb_pipeline::elements::{capsfilter, make, make_with, require};
use anb_pipeline::{BuildContext, ErrorCode, PipelineError, Problem, Role, Stage};
use serde::{Deserialize, Serialize};

mod ffi;
pub mod x264enc;

pub const PRESETS: [&str; 10] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"];
pub const PROFILES: [&str; 3] = ["baseline", "main", "high"];
pub const DEFAULT_PRESET: &str = "veryfast";
pub const DEFAULT_PROFILE: &str = "high";
pub const DEFAULT_CRF: u32 = 23;
pub const DEFAULT_AUDIO_BITRATE_KBPS: u32 = 128;
/// x264's own default GOP length (x264enc would otherwise pick 10 s worth of frames).
const KEYINT_MAX_FRAMES: &str = "250";

/// The AAC encoder. Its plugin (gst-libav) maps the whole libav stack when loaded.
const AAC_ENCODER: &str = "avenc_aac";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Encode {
    /// x264 speed preset, `ultrafast` to `placebo`. Default `veryfast`.
    pub preset: String,
    /// Constant quality, 0 (lossless) to 51; lower is better. Default 23 unless
    /// `video_bitrate_kbps` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Average video bitrate in kbit/s, instead of `crf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_bitrate_kbps: Option<u32>,
    /// H.264 profile: `baseline`, `main` or `high` (default).
    pub profile: String,
    /// Encoder threads. Default: CPUs × 3 / 2 in integers, at least 1 (x264's own rule, applied
    /// to the CPUs the process may use rather than the host's): 1 on one CPU, where frame
    /// threads would only cost, 3 on two, so cores stay busy while threads wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// AAC bitrate in kbit/s. Default 128.
    pub audio_bitrate_kbps: u32,
    /// Keep the input's sound as it is when it already fits the output (AAC-LC, at most two
    /// channels) and no stage changes it: no decoding, no re-encoding, no generation loss, and
    /// `audio_bitrate_kbps` does not apply. Default `true`.
    pub audio_passthrough: bool,
}

impl Default for Encode {
    fn default() -> Self {
        Encode {
            preset: DEFAULT_PRESET.into(),
            crf: None,
            video_bitrate_kbps: None,
            profile: DEFAULT_PROFILE.into(),
            threads: None,
            audio_bitrate_kbps: DEFAULT_AUDIO_BITRATE_KBPS,
            audio_passthrough: true,
        }
    }
}

impl Stage for Encode {
    fn role(&self) -> Role {
        Role::Encode
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !PRESETS.contains(&self.preset.as_str()) {
            problems.push(Problem::field(
                "preset",
                format!("`{}` is not an x264 preset; use one of {}", self.preset, PRESETS.join(", ")),
            ));
        }
        if !PROFILES.contains(&self.profile.as_str()) {
            problems.push(Problem::field(
                "profile",
                format!("`{}` is not valid; use one of {}", self.profile, PROFILES.join(", ")),
            ));
        }
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
        problems.extend(Problem::out_of_range("audio_bitrate_kbps", self.audio_bitrate_kbps, 16..=512));
        problems
    }

    fn video(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        let threads = self.threads.map_or((ctx.threads * 3 / 2).max(1), |t| t as usize).to_string();
        let convert_threads = ctx.threads.to_string();
        x264enc::register()
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("registering the encoder: {e}")))?;
        let quality = match self.video_bitrate_kbps {
            Some(kbps) => ("bitrate", kbps.to_string()),
            None => ("quantizer", self.crf.unwrap_or(DEFAULT_CRF).to_string()),
        };
        let x264 = make_with(
            x264enc::ELEMENT_NAME,
            &[
                ("speed-preset", &self.preset),
                (quality.0, &quality.1),
                ("profile", &self.profile),
                ("key-int-max", KEYINT_MAX_FRAMES),
                ("threads", &threads),
            ],
        )?;
        Ok(vec![
            make_with("videoconvert", &[("n-threads", &convert_threads)])?,
            capsfilter("video/x-raw,format=I420")?,
            x264,
            capsfilter(&format!("video/x-h264,profile={}", self.profile))?,
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
        assert_round_trip(&Encode { crf: Some(20), threads: Some(2), audio_passthrough: false, ..Encode::default() });
        assert_rejects_unknown_field::<Encode>("bitrate = 1000");
    }

    #[test]
    fn crf_and_bitrate_together_and_bad_values_are_rejected() {
        let e = Encode { crf: Some(60), video_bitrate_kbps: Some(2000), preset: "quick".into(), ..Encode::default() };
        let fields: Vec<_> = e.validate().into_iter().filter_map(|p| p.field).collect();
        assert_eq!(fields, ["preset", "crf", "crf"]);
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
        let pipeline = gst::Pipeline::new();
        let src = gst::parse::bin_from_description(
            "videotestsrc num-buffers=10 ! video/x-raw,format=Y444,width=64,height=64 ! identity",
            true,
        )
        .unwrap();
        let mut chain: Vec<gst::Element> = vec![src.upcast()];
        chain.extend(Encode::default().video(&BuildContext::with_threads(1)).unwrap());
        let sink = gst_app::AppSink::builder().sync(false).build();
        chain.push(sink.clone().upcast());
        pipeline.add_many(&chain).unwrap();
        gst::Element::link_many(&chain).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink.pull_sample().unwrap();
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        let mut frames = 1;
        while sink.pull_sample().is_ok() {
            frames += 1;
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(caps.name(), "video/x-h264");
        assert_eq!(caps.get::<&str>("profile").unwrap(), "high");
        assert_eq!(caps.get::<&str>("chroma-format").unwrap(), "4:2:0");
        assert_eq!(frames, 10);
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("crf = 20", Encode { crf: Some(20), ..Encode::default() });
        let encode = Encode::default();
        assert_eq!((encode.preset.as_str(), encode.profile.as_str()), (DEFAULT_PRESET, DEFAULT_PROFILE));
        assert!(encode.audio_passthrough);
    }
}

#[cfg(test)]
mod x264enc_tests;
