//! `gst`: a raw GStreamer element chain for the video and/or audio branch, in gst-launch syntax.
//!
//! ```toml
//! [[stage]]
//! type = "gst"
//! video = "videoflip video-direction=90r"
//! ```
//! Lets a media engineer add a step without writing Rust. The chain is parsed and its elements
//! created when the pipeline loads, so a typo fails `anb pipeline check`, not a job.

use anb_pipeline::{BuildContext, ErrorCode, PipelineError, Problem, Stage};
use gst::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GstChain {
    /// Elements for the video branch (raw video in and out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Elements for the audio branch (raw audio in and out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
}

impl Stage for GstChain {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.video.is_none() && self.audio.is_none() {
            problems.push(Problem::field("video", "set `video`, `audio` or both to a gst-launch element chain"));
        }
        for (field, chain) in [("video", &self.video), ("audio", &self.audio)] {
            if chain.as_deref().is_some_and(|c| c.trim().is_empty()) {
                problems.push(Problem::field(field, "must not be empty"));
            }
        }
        problems
    }

    fn video(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        parse("video", self.video.as_deref())
    }

    fn audio(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        parse("audio", self.audio.as_deref())
    }
}

fn parse(field: &str, chain: Option<&str>) -> Result<Vec<gst::Element>, PipelineError> {
    let Some(chain) = chain else { return Ok(Vec::new()) };
    let bin = gst::parse::bin_from_description(chain, true).map_err(|e| {
        PipelineError::new(ErrorCode::InvalidPipeline, format!("`{field}` = \"{chain}\" does not parse: {e}"))
    })?;
    if bin.static_pad("sink").is_none() || bin.static_pad("src").is_none() {
        return Err(PipelineError::new(
            ErrorCode::InvalidPipeline,
            format!("`{field}` = \"{chain}\" must be a chain with one input and one output"),
        ));
    }
    Ok(vec![bin.upcast()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&GstChain { video: Some("videoflip video-direction=90r".into()), audio: None });
        assert_rejects_unknown_field::<GstChain>("vidoe = \"identity\"");
    }

    #[test]
    fn unknown_elements_and_bad_syntax_fail_to_build() {
        gst::init().unwrap();
        let ctx = BuildContext::with_threads(1);
        let missing = GstChain { video: Some("nosuchelement".into()), audio: None };
        assert_eq!(missing.video(&ctx).unwrap_err().code(), ErrorCode::InvalidPipeline);
        let broken = GstChain { video: None, audio: Some("volume volume=".into()) };
        assert!(broken.audio(&ctx).is_err());
    }

    #[test]
    fn a_chain_transforms_the_picture() {
        let rotate = GstChain { video: Some("videoflip video-direction=90r".into()), audio: None };
        let frame = video_through(&rotate, "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=32");
        assert_eq!((frame.width, frame.height), (32, 64));
    }
}
