//! `resize`: scale to a fixed frame with square pixels, upright.
//!
//! `fit` scales the whole picture into the frame and pads the rest black (4:3 pillarboxed, 21:9
//! letterboxed, no distortion); `fill` crops to the frame's aspect ratio first; `stretch` scales
//! to the frame regardless. Rotation metadata (phone clips) is applied first.

use anb_pipeline::elements::{capsfilter, make_with};
use anb_pipeline::{BuildContext, PipelineError, Problem, Stage};
use serde::{Deserialize, Serialize};

pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;

fn default_width() -> u32 {
    DEFAULT_WIDTH
}
fn default_height() -> u32 {
    DEFAULT_HEIGHT
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Whole picture inside the frame, black bars on the free sides.
    #[default]
    Fit,
    /// Frame filled, the overflowing sides cropped.
    Fill,
    /// Frame filled by scaling each axis independently (distorts).
    Stretch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Output width in pixels (even). Default 1280.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Output height in pixels (even). Default 720.
    #[serde(default = "default_height")]
    pub height: u32,
    /// `fit` (default), `fill` or `stretch`.
    #[serde(default)]
    pub mode: Mode,
    /// Apply the input's rotation metadata (`image-orientation`) so phone clips come out upright.
    /// Default true.
    #[serde(default = "default_true")]
    pub auto_rotate: bool,
}

impl Default for Resize {
    fn default() -> Self {
        Resize { width: DEFAULT_WIDTH, height: DEFAULT_HEIGHT, mode: Mode::Fit, auto_rotate: true }
    }
}

impl Stage for Resize {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (field, value) in [("width", self.width), ("height", self.height)] {
            if !(16..=7680).contains(&value) || value % 2 != 0 {
                problems.push(Problem::field(field, format!("{value} is not valid: use an even number of pixels from 16 to 7680")));
            }
        }
        problems
    }

    fn video(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        let threads = ctx.threads.to_string();
        let mut chain = Vec::new();
        if self.auto_rotate {
            chain.push(make_with("videoflip", &[("video-direction", "auto")])?);
        }
        if self.mode == Mode::Fill {
            let ratio = format!("{}/{}", self.width, self.height);
            chain.push(make_with("aspectratiocrop", &[("aspect-ratio", &ratio)])?);
        }
        let borders = if self.mode == Mode::Fit { "true" } else { "false" };
        chain.push(make_with("videoscale", &[("add-borders", borders), ("n-threads", &threads)])?);
        chain.push(capsfilter(&format!(
            "video/x-raw,width={},height={},pixel-aspect-ratio=1/1",
            self.width, self.height
        ))?);
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Resize { width: 640, height: 360, mode: Mode::Fill, auto_rotate: false });
        assert_rejects_unknown_field::<Resize>("widht = 640");
        assert!(toml::from_str::<Resize>("mode = \"zoom\"").is_err());
    }

    #[test]
    fn odd_or_huge_sizes_are_rejected() {
        let r = Resize { width: 641, height: 100_000, ..Resize::default() };
        assert_eq!(r.validate().len(), 2);
    }

    // A white 4:3 picture fitted into 16:9 gets black pillars; the centre stays white.
    #[test]
    fn fit_pillarboxes_a_4_3_picture() {
        let stage = Resize { width: 320, height: 180, ..Resize::default() };
        let frame = video_through(&stage, "videotestsrc pattern=white num-buffers=2 ! video/x-raw,width=160,height=120");
        assert_eq!((frame.width, frame.height), (320, 180));
        assert!(is_black(frame.pixel(5, 90)) && is_black(frame.pixel(314, 90)), "pillars are black");
        assert!(!is_black(frame.pixel(160, 90)), "centre keeps the picture");
    }

    #[test]
    fn fill_crops_instead_of_padding() {
        let stage = Resize { width: 320, height: 180, mode: Mode::Fill, ..Resize::default() };
        let frame = video_through(&stage, "videotestsrc pattern=white num-buffers=2 ! video/x-raw,width=160,height=120");
        assert_eq!((frame.width, frame.height), (320, 180));
        assert!(!is_black(frame.pixel(5, 90)) && !is_black(frame.pixel(160, 5)), "no bars");
    }
}
