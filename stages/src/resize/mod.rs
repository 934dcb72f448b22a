//! `resize`: scale to a fixed frame with square pixels, upright.
//!
//! `fit` scales the whole picture into the frame and pads the rest black (4:3 pillarboxed, 21:9
//! letterboxed, no distortion); `fill` crops to the frame's aspect ratio first; `stretch` scales
//! to the frame regardless. Rotation metadata (phone clips) is applied first.

mod resampler;
mod rotate;
pub mod scaler;
mod swscale;
mod three_halves;

use anb_pipeline::elements::{capsfilter, make_with};
use anb_pipeline::{BuildContext, ErrorCode, PipelineError, Problem, Stage};
use gst::glib;
use serde::{Deserialize, Serialize};

pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
pub const DEFAULT_MODE: Mode = Mode::Fit;
pub const DEFAULT_METHOD: ScaleMethod = ScaleMethod::Bicubic;
pub const DEFAULT_AUTO_ROTATE: bool = true;

/// How the picture goes into the frame. The same type is the stage's `mode` and `anbscale`'s
/// `mode` property, so a name either does not know is an error in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, glib::Enum)]
#[serde(rename_all = "kebab-case")]
#[enum_type(name = "AnbScaleMode")]
pub enum Mode {
    /// Whole picture inside the frame, black bars on the free sides.
    #[enum_value(name = "Whole picture inside the frame, black bars on the free sides", nick = "fit")]
    Fit,
    /// Frame filled, the overflowing sides cropped.
    #[enum_value(name = "Frame filled, the overflowing sides cropped", nick = "fill")]
    Fill,
    /// Frame filled by scaling each axis independently (distorts).
    #[enum_value(name = "Frame filled by scaling each axis independently", nick = "stretch")]
    Stretch,
}

/// Scaling filter. Sharper filters keep more detail (and noise), which costs encoder bits. The
/// stage's `method` and `anbscale`'s `method` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, glib::Enum)]
#[serde(rename_all = "kebab-case")]
#[enum_type(name = "AnbScaleMethod")]
pub enum ScaleMethod {
    #[enum_value(name = "Bilinear", nick = "bilinear")]
    Bilinear,
    /// Cubic with swscale's parameters (B = 0, C = 0.6): ffmpeg's default `bicubic`.
    #[enum_value(name = "Cubic, B = 0, C = 0.6 (swscale's bicubic)", nick = "bicubic")]
    Bicubic,
    #[enum_value(name = "Lanczos", nick = "lanczos")]
    Lanczos,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resize {
    /// Output width in pixels (even). Default 1280.
    pub width: u32,
    /// Output height in pixels (even). Default 720.
    pub height: u32,
    /// `fit` (default), `fill` or `stretch`.
    pub mode: Mode,
    /// `bilinear`, `bicubic` (default) or `lanczos`.
    pub method: ScaleMethod,
    /// Apply the input's rotation metadata (`image-orientation`) so phone clips come out upright.
    /// Default true.
    pub auto_rotate: bool,
}

impl Default for Resize {
    fn default() -> Self {
        Resize {
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            mode: DEFAULT_MODE,
            method: DEFAULT_METHOD,
            auto_rotate: DEFAULT_AUTO_ROTATE,
        }
    }
}

impl Stage for Resize {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (field, value) in [("width", self.width), ("height", self.height)] {
            if !(16..=7680).contains(&value) || value % 2 != 0 {
                problems.push(Problem::field(
                    field,
                    format!("{value} is not valid: use an even number of pixels from 16 to 7680"),
                ));
            }
        }
        problems
    }

    fn video(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        let threads = ctx.threads.to_string();
        let mut chain = Vec::new();
        // The scaler works on 8-bit 4:2:0; other inputs (10-bit, 4:2:2, 4:4:4) are converted
        // first, and I420 passes through this conversion untouched.
        chain.push(make_with("videoconvert", &[("n-threads", &threads)])?);
        chain.push(capsfilter("video/x-raw,format=I420")?);
        scaler::register()
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("registering the scaler: {e}")))?;
        let scaler = gst::ElementFactory::make(scaler::ELEMENT_NAME)
            .property("width", self.width)
            .property("height", self.height)
            .property("mode", self.mode)
            .property("method", self.method)
            .property("auto-rotate", self.auto_rotate)
            .build()
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("creating the scaler: {e}")))?;
        chain.push(scaler);
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Resize {
            width: 640,
            height: 360,
            mode: Mode::Fill,
            method: ScaleMethod::Lanczos,
            auto_rotate: false,
        });
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
        let frame =
            video_through(&stage, "videotestsrc pattern=white num-buffers=2 ! video/x-raw,width=160,height=120");
        assert_eq!((frame.width, frame.height), (320, 180));
        assert!(is_black(frame.pixel(5, 90)) && is_black(frame.pixel(314, 90)), "pillars are black");
        assert!(!is_black(frame.pixel(160, 90)), "centre keeps the picture");
    }

    #[test]
    fn fill_crops_instead_of_padding() {
        let stage = Resize { width: 320, height: 180, mode: Mode::Fill, ..Resize::default() };
        let frame =
            video_through(&stage, "videotestsrc pattern=white num-buffers=2 ! video/x-raw,width=160,height=120");
        assert_eq!((frame.width, frame.height), (320, 180));
        assert!(!is_black(frame.pixel(5, 90)) && !is_black(frame.pixel(160, 5)), "no bars");
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("width = 640", Resize { width: 640, ..Resize::default() });
        assert!(Resize::default().auto_rotate);
    }
}
