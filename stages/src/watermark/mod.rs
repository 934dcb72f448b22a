//! `watermark`: text and/or a PNG logo drawn on every frame.
//!
//! ```toml
//! [[stage]]
//! type = "watermark"
//! text = { content = "ANB", position = "bottom-right", size = 28, opacity = 0.8 }
//! image = { path = "assets/anb-logo.png", position = "top-left", scale = 0.5 }
//! ```
//! Place it after `resize` so the mark has the same size on every output; before `resize`, it
//! scales with the picture.

use std::path::PathBuf;

mod element;
mod marks;

use anb_pipeline::elements::{make, make_with, quoted};
use anb_pipeline::{BuildContext, ErrorCode, PipelineError, Problem, Stage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    TopLeft,
    TopRight,
    BottomLeft,
    #[default]
    BottomRight,
    Center,
}

impl Position {
    /// (horizontal, vertical): -1 start, 0 centre, 1 end.
    fn axes(self) -> (i8, i8) {
        match self {
            Position::TopLeft => (-1, -1),
            Position::TopRight => (1, -1),
            Position::BottomLeft => (-1, 1),
            Position::BottomRight => (1, 1),
            Position::Center => (0, 0),
        }
    }
}

pub const DEFAULT_TEXT: &str = "ANB";
pub const DEFAULT_FONT: &str = "Sans Bold";
pub const DEFAULT_FONT_SIZE: u32 = 28;
pub const DEFAULT_MARGIN_PX: u32 = 24;
pub const DEFAULT_OPACITY: f64 = 0.8;
pub const DEFAULT_COLOR: &str = "#ffffff";
pub const DEFAULT_SCALE: f64 = 1.0;

// An image mark's `path` is required, so its other fields take their defaults one by one.
fn default_margin_px() -> u32 {
    DEFAULT_MARGIN_PX
}
fn default_opacity() -> f64 {
    DEFAULT_OPACITY
}
fn default_scale() -> f64 {
    DEFAULT_SCALE
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextMark {
    /// The text. Default `ANB`.
    pub content: String,
    /// Pango font family and style, e.g. `Sans Bold`. Default `Sans Bold`.
    pub font: String,
    /// Font size in points. Default 28.
    pub size: u32,
    /// `top-left`, `top-right`, `bottom-left`, `bottom-right` (default) or `center`.
    pub position: Position,
    /// Distance from the frame's edges in pixels. Default 24.
    pub margin_px: u32,
    /// 0 (invisible) to 1 (opaque). Default 0.8.
    pub opacity: f64,
    /// Colour as `#rrggbb`. Default white.
    pub color: String,
}

impl Default for TextMark {
    fn default() -> Self {
        TextMark {
            content: DEFAULT_TEXT.into(),
            font: DEFAULT_FONT.into(),
            size: DEFAULT_FONT_SIZE,
            position: Position::default(),
            margin_px: DEFAULT_MARGIN_PX,
            opacity: DEFAULT_OPACITY,
            color: DEFAULT_COLOR.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMark {
    /// A PNG file (with alpha for a clean edge). A relative path is relative to the pipeline
    /// file's folder (to the working directory for the built-in pipeline).
    pub path: PathBuf,
    /// As for text; default `bottom-right`.
    #[serde(default)]
    pub position: Position,
    /// Size factor applied to the PNG's own size, 0.05 to 4. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// 0 to 1. Default 0.8.
    #[serde(default = "default_opacity")]
    pub opacity: f64,
    /// Distance from the frame's edges in pixels. Default 24.
    #[serde(default = "default_margin_px")]
    pub margin_px: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watermark {
    /// A text mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextMark>,
    /// A PNG mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageMark>,
}

impl Stage for Watermark {
    fn resolve_paths(&mut self, base: &std::path::Path) {
        if let Some(image) = &mut self.image {
            if image.path.is_relative() {
                image.path = base.join(&image.path);
            }
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.text.is_none() && self.image.is_none() {
            problems.push(Problem::field("text", "set `text`, `image` or both"));
        }
        if let Some(t) = &self.text {
            if t.content.trim().is_empty() {
                problems.push(Problem::field("text.content", "must not be empty"));
            }
            if !(4..=400).contains(&t.size) {
                problems.push(Problem::field("text.size", format!("{} is not valid: use 4 to 400 points", t.size)));
            }
            if !(0.0..=1.0).contains(&t.opacity) {
                problems.push(Problem::field("text.opacity", "must be from 0 to 1"));
            }
            if parse_color(&t.color).is_none() {
                problems.push(Problem::field("text.color", format!("`{}` is not a colour: use `#rrggbb`", t.color)));
            }
        }
        if let Some(i) = &self.image {
            if let Err(message) = png_size(&i.path) {
                problems.push(Problem::field("image.path", message));
            }
            if !(0.05..=4.0).contains(&i.scale) {
                problems.push(Problem::field("image.scale", "must be from 0.05 to 4"));
            }
            if !(0.0..=1.0).contains(&i.opacity) {
                problems.push(Problem::field("image.opacity", "must be from 0 to 1"));
            }
        }
        problems
    }

    fn video(&self, _ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        let mut overlays = Vec::new();
        if let Some(image) = &self.image {
            overlays.push(image_overlay(image)?);
        }
        if let Some(text) = &self.text {
            overlays.push(text_overlay(text));
        }
        // Made once here so a missing plugin or property is reported when the graph is built.
        for overlay in &overlays {
            let props: Vec<(&str, &str)> = overlay.props.iter().map(|(k, v)| (*k, v.as_str())).collect();
            make_with(overlay.factory, &props)?;
        }
        let marks = overlays.iter().map(Overlay::launch_text).collect::<Vec<_>>().join(" ! ");
        element::register()
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("registering the watermark: {e}")))?;
        // The blender takes planar 8-bit YUV: after `resize` (I420) the conversion does nothing.
        Ok(vec![make("videoconvert")?, make_with(element::ELEMENT_NAME, &[("marks", &marks)])?])
    }
}

/// An overlay element that draws one mark, with its properties in gst-launch syntax.
struct Overlay {
    factory: &'static str,
    props: Vec<(&'static str, String)>,
}

impl Overlay {
    fn launch_text(&self) -> String {
        let plain = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-+/".contains(c));
        let value = |v: &str| if plain(v) { v.to_string() } else { quoted(v) };
        let props: Vec<String> = self.props.iter().map(|(k, v)| format!("{k}={}", value(v))).collect();
        format!("{} {}", self.factory, props.join(" "))
    }
}

fn text_overlay(t: &TextMark) -> Overlay {
    let (h, v) = t.position.axes();
    let halign = ["left", "center", "right"][(h + 1) as usize];
    let valign = ["top", "center", "bottom"][(v + 1) as usize];
    let rgb = parse_color(&t.color).unwrap_or(0xffffff);
    let argb = ((t.opacity.clamp(0.0, 1.0) * 255.0).round() as u32) << 24 | rgb;
    let margin = t.margin_px.to_string();
    Overlay {
        factory: "textoverlay",
        props: vec![
            ("text", t.content.clone()),
            ("font-desc", format!("{} {}", t.font, t.size)),
            ("halignment", halign.into()),
            ("valignment", valign.into()),
            ("xpad", margin.clone()),
            ("ypad", margin),
            ("color", argb.to_string()),
            ("draw-shadow", "true".into()),
            ("wait-text", "false".into()),
        ],
    }
}

/// Absolute positioning: x = offset + relative * overlay width + coef * video width, which puts
/// any corner or the centre at a margin without knowing the frame size in advance.
fn image_overlay(i: &ImageMark) -> Result<Overlay, PipelineError> {
    let (w, h) = png_size(&i.path).map_err(|m| PipelineError::new(ErrorCode::InvalidPipeline, m))?;
    let (ax, ay) = i.position.axes();
    let place = |axis: i8| -> (f64, f64, i64) {
        match axis {
            -1 => (0.0, 0.0, i.margin_px as i64),
            0 => (0.5, -0.5, 0),
            _ => (1.0, -1.0, -(i.margin_px as i64)),
        }
    };
    let (coef_x, rel_x, off_x) = place(ax);
    let (coef_y, rel_y, off_y) = place(ay);
    let scaled = |n: u32| ((n as f64 * i.scale).round() as u32).max(1).to_string();
    Ok(Overlay {
        factory: "gdkpixbufoverlay",
        props: vec![
            ("location", i.path.to_string_lossy().into_owned()),
            ("positioning-mode", "pixels-absolute".into()),
            ("coef-x", coef_x.to_string()),
            ("coef-y", coef_y.to_string()),
            ("relative-x", rel_x.to_string()),
            ("relative-y", rel_y.to_string()),
            ("offset-x", off_x.to_string()),
            ("offset-y", off_y.to_string()),
            ("overlay-width", scaled(w)),
            ("overlay-height", scaled(h)),
            ("alpha", i.opacity.clamp(0.0, 1.0).to_string()),
        ],
    })
}

fn parse_color(text: &str) -> Option<u32> {
    let hex = text.strip_prefix('#')?;
    (hex.len() == 6).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &std::path::Path) -> Result<(u32, u32), String> {
    use std::io::Read;
    let mut head = [0u8; 24];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if &head[..8] != b"\x89PNG\r\n\x1a\n" || &head[12..16] != b"IHDR" {
        return Err(format!("`{}` is not a PNG file", path.display()));
    }
    let width = u32::from_be_bytes(head[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(head[20..24].try_into().unwrap());
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use gst::prelude::*;
    use gst_video::prelude::*;

    fn logo() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/anb-logo.png"))
    }

    fn text_mark(position: Position) -> TextMark {
        TextMark {
            content: "ANB".into(),
            font: DEFAULT_FONT.into(),
            size: 20,
            position,
            margin_px: 8,
            opacity: 1.0,
            color: "#ffffff".into(),
        }
    }

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Watermark {
            text: Some(text_mark(Position::TopRight)),
            image: Some(ImageMark {
                path: logo(),
                position: Position::Center,
                scale: 0.5,
                opacity: 0.7,
                margin_px: 10,
            }),
        });
        assert_rejects_unknown_field::<Watermark>("txt = { content = \"x\" }");
        assert!(toml::from_str::<Watermark>("text = { content = \"x\", colour = \"#fff\" }").is_err());
    }

    #[test]
    fn validation_names_every_bad_field() {
        let mut text = text_mark(Position::Center);
        text.color = "white".into();
        text.opacity = 2.0;
        let w = Watermark {
            text: Some(text),
            image: Some(ImageMark {
                path: "Cargo.toml".into(),
                position: Position::Center,
                scale: 9.0,
                opacity: 1.0,
                margin_px: 0,
            }),
        };
        let fields: Vec<_> = w.validate().into_iter().filter_map(|p| p.field).collect();
        assert_eq!(fields, ["text.opacity", "text.color", "image.path", "image.scale"]);
        assert_eq!(png_size(&logo()).map(|(w, h)| w > 0 && h > 0), Ok(true));
    }

    const BLACK_320X180: &str = "videotestsrc pattern=black num-buffers=2 ! video/x-raw,width=320,height=180";

    /// Non-black pixels of a frame, as a bounding box (x0, y0, x1, y1).
    fn marked_region(frame: &Frame) -> Option<(i32, i32, i32, i32)> {
        let mut bbox: Option<(i32, i32, i32, i32)> = None;
        for y in 0..frame.height {
            for x in 0..frame.width {
                if !is_black(frame.pixel(x, y)) {
                    let b = bbox.get_or_insert((x, y, x, y));
                    *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
                }
            }
        }
        bbox
    }

    #[test]
    fn text_marks_only_its_corner() {
        let w = Watermark { text: Some(text_mark(Position::BottomRight)), image: None };
        let frame = video_through(&w, BLACK_320X180);
        let (x0, y0, x1, y1) = marked_region(&frame).expect("the text changed pixels");
        assert!(x0 > 160 && y0 > 90, "the mark stays in the bottom-right quarter: {x0},{y0}");
        assert!(x1 < 320 - 4 && y1 < 180 - 4, "and keeps its margin: {x1},{y1}");
    }

    #[test]
    fn image_marks_only_its_corner() {
        let image = ImageMark { path: logo(), position: Position::TopLeft, scale: 0.25, opacity: 1.0, margin_px: 10 };
        let w = Watermark { text: None, image: Some(image) };
        let frame = video_through(&w, BLACK_320X180);
        let (x0, y0, x1, y1) = marked_region(&frame).expect("the logo changed pixels");
        assert!(x0 >= 10 && y0 >= 10, "margin respected: {x0},{y0}");
        assert!(x1 < 160 && y1 < 90, "the mark stays in the top-left quarter: {x1},{y1}");
    }

    /// The first frame of `chain` after a 320x180 picture of one colour in `format`, as planes.
    fn frame_through(format: &str, chain: &str) -> [Vec<u8>; 3] {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc pattern=solid-color foreground-color=0xff2a6f9c num-buffers=1 ! \
             video/x-raw,format={format},width=320,height=180,colorimetry=bt709 ! {chain} ! appsink name=out sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
        let _playing = Playing::start(pipeline).unwrap();
        let sample = sink.pull_sample().expect("a frame");
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let frame = gst_video::VideoFrame::from_buffer_readable(sample.buffer_owned().unwrap(), &info).unwrap();
        std::array::from_fn(|plane| {
            let (w, h) = (frame.comp_width(plane as u32) as usize, frame.comp_height(plane as u32) as usize);
            let stride = frame.plane_stride()[plane] as usize;
            let data = frame.plane_data(plane as u32).unwrap();
            (0..h).flat_map(|y| data[y * stride..y * stride + w].iter().copied()).collect()
        })
    }

    /// 4:4:4 chroma averaged over 2x2 blocks: what a 4:2:0 sample should show.
    fn box_420(plane: &[u8], width: usize) -> Vec<u8> {
        let height = plane.len() / width;
        let at = |x: usize, y: usize| plane[y * width + x] as u32;
        (0..height / 2)
            .flat_map(|y| (0..width / 2).map(move |x| (x, y)))
            .map(|(x, y)| {
                ((at(2 * x, 2 * y) + at(2 * x + 1, 2 * y) + at(2 * x, 2 * y + 1) + at(2 * x + 1, 2 * y + 1) + 2) / 4)
                    as u8
            })
            .collect()
    }

    fn differences(a: &[u8], b: &[u8]) -> (usize, i32) {
        let diffs = a.iter().zip(b).map(|(x, y)| (*x as i32 - *y as i32).abs());
        (diffs.clone().filter(|&d| d > 0).count(), diffs.max().unwrap_or(0))
    }

    /// The marks look as the overlay elements draw them: luma as they blend it onto I420, and
    /// chroma as the 2x2 mean of their drawing at full chroma resolution (their own I420 blend
    /// takes one pixel's chroma per block, which leaves colour fringes at a mark's edges).
    #[test]
    fn blending_matches_the_overlay_elements_drawing_directly() {
        let w = Watermark {
            text: Some(TextMark { opacity: 0.8, ..text_mark(Position::BottomRight) }),
            image: Some(ImageMark {
                path: logo(),
                position: Position::TopLeft,
                scale: 1.0,
                opacity: 0.9,
                margin_px: 10,
            }),
        };
        let overlays = [image_overlay(w.image.as_ref().unwrap()).unwrap(), text_overlay(w.text.as_ref().unwrap())];
        let marks = overlays.iter().map(Overlay::launch_text).collect::<Vec<_>>().join(" ! ");
        gst::init().unwrap();
        element::register().unwrap();
        let ours = frame_through("I420", &format!("anbwatermark marks={}", quoted(&marks)));
        let plain = frame_through("I420", "identity");
        let direct = frame_through("I420", &marks);
        let direct_444 = frame_through("Y444", &marks);

        let (marked, _) = differences(&plain[0], &ours[0]);
        assert!(marked > 2000, "the marks change the picture ({marked} luma samples)");
        let (differing, max) = differences(&direct[0], &ours[0]);
        assert!(max <= 3, "luma within 3 levels of textoverlay's and gdkpixbufoverlay's: {max} ({differing} differ)");
        for plane in 1..3 {
            let reference = box_420(&direct_444[plane], 320);
            let (marked, _) = differences(&plain[plane], &reference);
            let (differing, max) = differences(&reference, &ours[plane]);
            assert!(marked > 500, "chroma plane {plane} is marked ({marked} samples)");
            assert!(
                max <= 3,
                "chroma plane {plane} within 3 levels of the mean of the full drawing: {max} ({differing} differ)"
            );
        }
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("content = \"GO\"", TextMark { content: "GO".into(), ..TextMark::default() });
        let text = TextMark::default();
        assert_eq!((text.font.as_str(), text.size, text.opacity), (DEFAULT_FONT, DEFAULT_FONT_SIZE, DEFAULT_OPACITY));
        assert_defaults_fill_in("text = {}", Watermark { text: Some(TextMark::default()), image: None });
    }
}
