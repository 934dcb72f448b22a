//! `audio`: keep the sound (optionally resampled, remixed or louder), or strip it.

use anb_pipeline::elements::{capsfilter, make, make_with};
use anb_pipeline::{BuildContext, PipelineError, Problem, Stage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioMode {
    #[default]
    Keep,
    Strip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Audio {
    /// `keep` (default) or `strip` (the output has no audio stream).
    pub mode: AudioMode,
    /// Resample to this rate, in Hz (8000 to 96000). Default: the input's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate_hz: Option<u32>,
    /// Mix to this many channels (1 or 2). Default: the input's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Gain as a factor (0 to 4). Default 1.
    pub volume: f64,
}

impl Default for Audio {
    fn default() -> Self {
        Audio { mode: AudioMode::Keep, sample_rate_hz: None, channels: None, volume: 1.0 }
    }
}

impl Stage for Audio {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        problems
            .extend(self.sample_rate_hz.and_then(|rate| Problem::out_of_range("sample_rate_hz", rate, 8000..=96000)));
        problems.extend(self.channels.and_then(|ch| Problem::out_of_range("channels", ch, 1..=2)));
        problems.extend(Problem::out_of_range("volume", self.volume, 0.0..=4.0));
        problems
    }

    fn audio(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        if self.mode == AudioMode::Strip
            || (self.sample_rate_hz.is_none() && self.channels.is_none() && self.volume == 1.0)
        {
            return Ok(Vec::new());
        }
        let mut chain = vec![make("audioconvert")?, make("audioresample")?];
        let mut caps = String::from("audio/x-raw");
        if let Some(rate) = self.sample_rate_hz {
            caps.push_str(&format!(",rate={rate}"));
        }
        if let Some(ch) = self.channels {
            caps.push_str(&format!(",channels={ch}"));
        }
        chain.push(capsfilter(&caps)?);
        if self.volume != 1.0 {
            chain.push(make_with("volume", &[("volume", &self.volume.to_string())])?);
        }
        Ok(chain)
    }

    fn keeps_audio(&self) -> bool {
        self.mode == AudioMode::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Audio {
            mode: AudioMode::Keep,
            sample_rate_hz: Some(44100),
            channels: Some(1),
            volume: 0.5,
        });
        assert_rejects_unknown_field::<Audio>("mode = \"keep\"\nnormalise = true");
    }

    #[test]
    fn strip_drops_the_stream_and_out_of_range_values_are_rejected() {
        let strip: Audio = toml::from_str("mode = \"strip\"").unwrap();
        assert!(!strip.keeps_audio());
        let bad = Audio { sample_rate_hz: Some(1), channels: Some(6), volume: 9.0, ..Audio::default() };
        assert_eq!(bad.validate().len(), 3);
    }

    #[test]
    fn resamples_and_downmixes() {
        gst::init().unwrap();
        let stage = Audio { sample_rate_hz: Some(22050), channels: Some(1), ..Audio::default() };
        let elements = stage.audio(&BuildContext::with_threads(1)).unwrap();
        let samples = samples_through("audiotestsrc num-buffers=5 ! audio/x-raw,rate=48000,channels=2", elements);
        let sample = samples.first().expect("sound came out");
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        assert_eq!(caps.get::<i32>("rate").unwrap(), 22050);
        assert_eq!(caps.get::<i32>("channels").unwrap(), 1);
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("channels = 1", Audio { channels: Some(1), ..Audio::default() });
        assert_eq!(Audio::default().volume, 1.0);
    }
}
