//! The marks of a frame size, drawn once and kept ready to blend.
//!
//! GStreamer's overlay elements blend through `GstVideoOverlayComposition`, which on every frame
//! unpacks each touched row of the picture, converts the mark from RGB to YUV pixel by pixel, blends
//! and packs the row back: about 0.3 ms per 720p frame for a logo and a short text, 1.5 % of a
//! whole job. Here the same elements draw the marks once, on a transparent canvas of the frame's
//! size (they composite onto a transparent picture exactly as onto video, so position, font
//! scaling and shadow are theirs), and the canvas is converted once to what blending needs per
//! plane: the mark's colour already multiplied by its coverage, and the share of the picture left.
//! A frame then costs one multiply-add per covered sample.

use anb_pipeline::elements::Playing;
use gst::prelude::*;

/// A run of covered samples of one plane: `x..x + keep.len()` of row `y`.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    y: usize,
    x: usize,
    /// The mark's value times its coverage, in 1/256 units (at most 255 x (256 - keep), so a
    /// blend stays within 16 bits).
    mark: Vec<u16>,
    /// What is kept of the picture, 0 (covered) to 256 (untouched).
    keep: Vec<u16>,
}

/// Transparent gaps shorter than this stay inside a run: blending them changes nothing and
/// costs less than starting another run.
const GAP: usize = 16;

/// The covered runs of every plane of one frame format, ready to blend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    planes: Vec<Vec<Run>>,
}

/// The colour conversion of the video the marks go on.
#[derive(Debug, Clone, Copy)]
pub struct Yuv {
    pub kr: f64,
    pub kb: f64,
    /// Limited (studio) range, as H.264 video almost always is.
    pub limited: bool,
}

impl Yuv {
    fn convert(&self, [r, g, b]: [f64; 3]) -> [f64; 3] {
        let y = self.kr * r + (1.0 - self.kr - self.kb) * g + self.kb * b;
        let u = (b - y) / (2.0 * (1.0 - self.kb));
        let v = (r - y) / (2.0 * (1.0 - self.kr));
        if self.limited {
            [16.0 + 219.0 * y / 255.0, 128.0 + 224.0 * u / 255.0, 128.0 + 224.0 * v / 255.0]
        } else {
            [y, 128.0 + u, 128.0 + v]
        }
    }
}

/// The geometry of a planar 8-bit YUV format: per plane, log2 of the subsampling (x, y).
pub type Subsampling = [(u32, u32); 3];

impl Marks {
    /// From a canvas of straight (not premultiplied) BGRA pixels, `width` x `height`, packed.
    pub fn from_canvas(bgra: &[u8], width: usize, height: usize, yuv: Yuv, subsampling: Subsampling) -> Marks {
        let pixel = |x: usize, y: usize| -> (f64, [f64; 3]) {
            let p = &bgra[(y * width + x) * 4..][..4];
            if p[3] == 0 {
                return (0.0, [0.0; 3]);
            }
            (p[3] as f64 / 255.0, yuv.convert([p[2] as f64, p[1] as f64, p[0] as f64]))
        };
        // Only the covered stretch of each row needs converting (a small part of the frame).
        let covered = |x: usize, y: usize| bgra[(y * width + x) * 4 + 3] != 0;
        let spans: Vec<Option<(usize, usize)>> = (0..height)
            .map(|y| Some(((0..width).find(|&x| covered(x, y))?, (0..width).rfind(|&x| covered(x, y))?)))
            .collect();
        // The covered stretch of a block of rows, in samples of a plane subsampled by `xs`.
        let span_of = |rows: std::ops::Range<usize>, xs: u32| {
            let spans = spans[rows].iter().flatten();
            let left = spans.clone().map(|s| s.0).min()?;
            Some((left >> xs, spans.map(|s| s.1).max()? >> xs))
        };
        let planes = subsampling
            .iter()
            .enumerate()
            .map(|(component, &(xs, ys))| {
                let mut runs = Vec::new();
                for py in 0..height.div_ceil(1 << ys) {
                    let Some((x0, x1)) = span_of((py << ys)..((py + 1) << ys).min(height), xs) else { continue };
                    let mut mark = Vec::new();
                    let mut keep = Vec::new();
                    for px in x0..=x1 {
                        // A subsampled chroma sample stands for a block of pixels: blend with the
                        // block's mean coverage and mean premultiplied colour.
                        let (mut coverage, mut value, mut n) = (0.0, 0.0, 0.0);
                        for y in (py << ys)..((py + 1) << ys).min(height) {
                            for x in (px << xs)..((px + 1) << xs).min(width) {
                                let (alpha, colour) = pixel(x, y);
                                coverage += alpha;
                                value += alpha * colour[component];
                                n += 1.0;
                            }
                        }
                        let coverage256 = (coverage / n * 256.0).round() as u16;
                        mark.push(((value / n * 256.0).round() as u16).min(255 * coverage256));
                        keep.push(256 - coverage256);
                    }
                    runs.extend(split_runs(py, x0, &mark, &keep));
                }
                runs
            })
            .collect();
        Marks { planes }
    }

    /// Whether there is nothing to draw (the marks fall outside the frame, or are transparent).
    pub fn is_empty(&self) -> bool {
        self.planes.iter().all(Vec::is_empty)
    }

    /// Blend onto one plane of a frame.
    pub fn blend(&self, plane: usize, data: &mut [u8], stride: usize) {
        for run in &self.planes[plane] {
            let start = run.y * stride + run.x;
            let samples = &mut data[start..start + run.keep.len()];
            // 16-bit lanes: sample x keep + mark <= 255 x 256 (see `Run::mark`).
            for ((sample, &keep), &mark) in samples.iter_mut().zip(&run.keep).zip(&run.mark) {
                *sample = ((*sample as u16 * keep + mark + 128) >> 8) as u8;
            }
        }
    }
}

/// The covered stretches of one row as runs, each starting at a covered sample.
fn split_runs(y: usize, x0: usize, mark: &[u16], keep: &[u16]) -> Vec<Run> {
    let covered: Vec<usize> = (0..keep.len()).filter(|&i| keep[i] < 256).collect();
    let mut runs = Vec::new();
    let mut start = 0;
    for k in 0..covered.len() {
        let ends_here = k + 1 == covered.len() || covered[k + 1] - covered[k] > GAP;
        if ends_here {
            let (first, last) = (covered[start], covered[k]);
            runs.push(Run { y, x: x0 + first, mark: mark[first..=last].to_vec(), keep: keep[first..=last].to_vec() });
            start = k + 1;
        }
    }
    runs
}

/// Draw `marks` (a gst-launch chain of overlay elements) once on a transparent `width` x
/// `height` BGRA canvas and return its pixels, packed.
pub fn draw_canvas(marks: &str, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let description = format!(
        "videotestsrc pattern=solid-color foreground-color=0 num-buffers=1 ! \
         video/x-raw,format=BGRA,width={width},height={height},framerate=1/1,pixel-aspect-ratio=1/1 ! \
         {marks} ! appsink name=canvas sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("the marks cannot be drawn: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the marks are not a chain of elements".to_string())?;
    let sink =
        pipeline.by_name("canvas").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or("no canvas sink")?;
    let pipeline = Playing::start(pipeline).map_err(|e| format!("drawing the marks: {e}"))?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10)).ok_or_else(|| {
        let bus_error = pipeline.bus().and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
        match bus_error.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => format!("drawing the marks: {}", e.error()),
            _ => "drawing the marks gave no picture".to_string(),
        }
    })?;
    let buffer = sample.buffer().ok_or("drawing the marks gave no picture")?;
    let map = buffer.map_readable().map_err(|_| "the marks' picture cannot be read")?;
    let row = width as usize * 4;
    let stride = map.len() / height as usize;
    if stride < row {
        return Err("the marks' picture is too small".to_string());
    }
    Ok(map.chunks(stride).take(height as usize).flat_map(|r| &r[..row]).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT709: Yuv = Yuv { kr: 0.2126, kb: 0.0722, limited: true };
    const I420: Subsampling = [(0, 0), (1, 1), (1, 1)];

    fn canvas(width: usize, height: usize, paint: impl Fn(usize, usize) -> [u8; 4]) -> Vec<u8> {
        (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).flat_map(|(x, y)| paint(x, y)).collect()
    }

    #[test]
    fn opaque_white_replaces_and_transparent_keeps() {
        // Left half opaque white, right half transparent.
        let bgra = canvas(8, 4, |x, _| if x < 4 { [255, 255, 255, 255] } else { [0, 0, 0, 0] });
        let marks = Marks::from_canvas(&bgra, 8, 4, BT709, I420);
        let mut luma = vec![50u8; 8 * 4];
        marks.blend(0, &mut luma, 8);
        for row in luma.chunks(8) {
            assert_eq!(row, [235, 235, 235, 235, 50, 50, 50, 50]);
        }
        let mut chroma = vec![90u8; 4 * 2];
        marks.blend(1, &mut chroma, 4);
        for row in chroma.chunks(4) {
            assert_eq!(row, [128, 128, 90, 90], "white has neutral chroma; the rest is untouched");
        }
    }

    #[test]
    fn half_coverage_mixes_half_and_chroma_uses_the_block_mean() {
        // Black at alpha 128 everywhere, over luma 200: (200 + 16) / 2 within a level.
        let bgra = canvas(4, 2, |_, _| [0, 0, 0, 128]);
        let marks = Marks::from_canvas(&bgra, 4, 2, BT709, I420);
        let mut luma = vec![200u8; 8];
        marks.blend(0, &mut luma, 4);
        assert!(luma.iter().all(|&v| (107..=109).contains(&v)), "{luma:?}");
        // One opaque red pixel in a 2x2 block covers a quarter of the chroma sample.
        let bgra = canvas(2, 2, |x, y| if (x, y) == (0, 0) { [0, 0, 255, 255] } else { [0, 0, 0, 0] });
        let marks = Marks::from_canvas(&bgra, 2, 2, BT709, I420);
        let mut v = [128u8];
        marks.blend(2, &mut v, 1);
        let red_v = 128.0 + 224.0 * 0.5;
        let expected = 128.0 * 0.75 + red_v * 0.25;
        assert!((v[0] as f64 - expected).abs() <= 1.0, "{} vs {expected}", v[0]);
    }

    #[test]
    fn only_covered_samples_are_kept_and_a_clear_canvas_is_empty() {
        let bgra =
            canvas(
                64,
                16,
                |x, y| {
                    if ((5..7).contains(&x) || x == 36) && y == 9 {
                        [10, 20, 30, 255]
                    } else {
                        [0, 0, 0, 0]
                    }
                },
            );
        let marks = Marks::from_canvas(&bgra, 64, 16, BT709, I420);
        // Two runs in luma (the gap is wide), one in chroma (the gap is under 16 samples there).
        assert_eq!(marks.planes[0].len(), 2);
        assert_eq!((marks.planes[0][1].x, marks.planes[0][1].keep.len()), (36, 1));
        assert_eq!(marks.planes[1].len(), 1);
        assert_eq!((marks.planes[1][0].y, marks.planes[1][0].x, marks.planes[1][0].keep.len()), (4, 2, 17));
        assert_eq!((marks.planes[0][0].y, marks.planes[0][0].x, marks.planes[0][0].keep.len()), (9, 5, 2));
        assert!(Marks::from_canvas(&canvas(4, 4, |_, _| [9, 9, 9, 0]), 4, 4, BT709, I420).is_empty());
    }
}
