//! `poster`: a JPEG still of the processed video, published as the run's `poster` side output.
//!
//! ```toml
//! [[stage]]
//! type = "poster"   # after resize and watermark: the poster shows what viewers will see
//! width = 640
//! ```
//! The stage's element is a bin: a `tee` passes every frame on untouched, and a side branch
//! (a one-frame leaky queue, scale to `width`, an `appsink`) looks at four frames a second.
//! Without `at_secs` it keeps the best-exposed of them from 0.5 s to the end of the video's
//! first third (never frame 0, often black; a frame too dark, too bright or too flat only wins
//! when nothing else is there); with `at_secs`, the first frame at or after that time. Once
//! chosen, the side branch drops everything, and the frame is encoded with `jpegenc`. No second
//! decode, and no memory beyond one small frame.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anb_pipeline::elements::{capsfilter, make, make_with, require, Playing};
use anb_pipeline::{Artifact, BuildContext, ErrorCode, PipelineError, Problem, Stage};
use gst::prelude::*;
use gst_video::prelude::*;
use serde::{Deserialize, Serialize};

pub const DEFAULT_WIDTH: u32 = 640;
pub const DEFAULT_QUALITY: u32 = 85;
/// Frames looked at per second of video.
const LOOKS_PER_SEC: u64 = 4;
/// The earliest frame a poster may be, when no time is given.
const EARLIEST: Duration = Duration::from_millis(500);
/// Where the search ends when the video's length is not known in advance.
const SEARCH_WITHOUT_LENGTH: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Poster {
    /// Width in pixels; the height keeps the picture's shape. Default 640.
    pub width: u32,
    /// Take the frame at this time (seconds of output) instead of the best in the first third.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_secs: Option<f64>,
    /// JPEG quality, 1 to 100. Default 85.
    pub quality: u32,
}

impl Default for Poster {
    fn default() -> Self {
        Poster { width: DEFAULT_WIDTH, at_secs: None, quality: DEFAULT_QUALITY }
    }
}

impl Stage for Poster {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        problems.extend(Problem::out_of_range("width", self.width, 16..=3840));
        problems.extend(Problem::out_of_range("quality", self.quality, 1..=100));
        if let Some(at) = self.at_secs {
            if !(at.is_finite() && at >= 0.0) {
                problems.push(Problem::field("at_secs", "must be a time in seconds, 0 or more"));
            }
        }
        problems
    }

    fn video(&self, ctx: &BuildContext) -> Result<Vec<gst::Element>, PipelineError> {
        Ok(vec![self.branch(ctx)?.upcast()])
    }
}

impl Poster {
    fn branch(&self, ctx: &BuildContext) -> Result<gst::Bin, PipelineError> {
        let internal = |e: gst::glib::BoolError| {
            PipelineError::new(ErrorCode::Internal, format!("building the poster branch: {e}"))
        };
        let bin = gst::Bin::new();
        let tee = make("tee")?;
        let queue = make_with(
            "queue",
            &[("max-size-buffers", "1"), ("max-size-bytes", "0"), ("max-size-time", "0"), ("leaky", "downstream")],
        )?;
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let caps = capsfilter(&format!("video/x-raw,format=I420,width={},pixel-aspect-ratio=1/1", self.width))?;
        require("jpegenc")?; // installed? (checked at load, not when the poster is due)
        let sink = gst_app::AppSink::builder().sync(false).max_buffers(1).build();
        bin.add_many([&tee, &queue, &convert, &scale, &caps, sink.upcast_ref()]).map_err(internal)?;
        gst::Element::link_many([&queue, &convert, &scale, &caps, sink.upcast_ref()]).map_err(internal)?;
        let main = tee.request_pad_simple("src_%u").expect("tee gives pads");
        let side = tee.request_pad_simple("src_%u").expect("tee gives pads");
        side.link(&queue.static_pad("sink").expect("a queue has a sink pad"))
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("linking the poster branch: {e}")))?;
        let ghost = |name: &str, target: &gst::Pad| {
            gst::GhostPad::builder_with_target(target).map(|b| b.name(name).build()).map_err(internal)
        };
        bin.add_pad(&ghost("sink", &tee.static_pad("sink").expect("a tee has a sink pad"))?).map_err(internal)?;
        bin.add_pad(&ghost("src", &main)?).map_err(internal)?;

        let search_end = ctx.expected_duration.map_or(SEARCH_WITHOUT_LENGTH, |d| d / 3).max(EARLIEST);
        let picker = Arc::new(Mutex::new(Picker::new(self.at_secs.map(Duration::from_secs_f64), search_end)));
        let thinning = picker.clone();
        side.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
            match buffer.pts() {
                Some(pts) if thinning.lock().expect("picker").wants(pts) => gst::PadProbeReturn::Ok,
                _ => gst::PadProbeReturn::Drop,
            }
        });
        let (on_sample, on_eos) = (picker.clone(), picker);
        let (artifacts, quality) = (ctx.artifacts.clone(), self.quality);
        let publish = move |picker: &mut Picker| {
            if let Some(frame) = picker.finish() {
                match encode_jpeg(&frame, quality) {
                    Ok(bytes) => artifacts.publish(Artifact {
                        name: "poster".into(),
                        extension: "jpg".into(),
                        content_type: "image/jpeg".into(),
                        bytes,
                    }),
                    Err(e) => tracing::warn!(error = %e, "Could not encode the poster"),
                }
            }
        };
        let publish = Arc::new(publish);
        let publish_at_eos = publish.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut picker = on_sample.lock().expect("picker");
                    if picker.offer(sample) {
                        publish(&mut picker);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    let mut picker = on_eos.lock().expect("picker");
                    publish_at_eos(&mut picker);
                })
                .build(),
        );
        Ok(bin)
    }
}

/// Which frame becomes the poster. Times are from the first frame the branch sees.
struct Picker {
    at: Option<Duration>,
    search_end: Duration,
    first_pts: Option<gst::ClockTime>,
    next_look: Duration,
    best: Option<(f64, gst::Sample)>,
    done: bool,
}

impl Picker {
    fn new(at: Option<Duration>, search_end: Duration) -> Self {
        Picker { at, search_end, first_pts: None, next_look: at.unwrap_or(EARLIEST), best: None, done: false }
    }

    fn since_first(&mut self, pts: gst::ClockTime) -> Duration {
        let first = *self.first_pts.get_or_insert(pts);
        Duration::from_nanos(pts.saturating_sub(first).nseconds())
    }

    /// Whether the frame at `pts` should reach the side branch (four a second while searching).
    fn wants(&mut self, pts: gst::ClockTime) -> bool {
        let t = self.since_first(pts);
        if self.done || t < self.next_look {
            return false;
        }
        self.next_look = t + Duration::from_millis(1000 / LOOKS_PER_SEC);
        true
    }

    /// Consider a scaled frame; `true` once the choice is made.
    fn offer(&mut self, sample: gst::Sample) -> bool {
        if self.done {
            return false;
        }
        let Some(pts) = sample.buffer().and_then(|b| b.pts()) else { return false };
        let t = self.since_first(pts);
        if self.at.is_some() {
            self.best = Some((0.0, sample));
            return true;
        }
        if t > self.search_end && self.best.is_some() {
            return true;
        }
        let score = exposure_score(&sample).unwrap_or(f64::MIN);
        if self.best.as_ref().is_none_or(|(best, _)| score > *best) {
            self.best = Some((score, sample));
        }
        false
    }

    /// The chosen frame, once; the branch takes no frames after this.
    fn finish(&mut self) -> Option<gst::Sample> {
        if self.done {
            return None;
        }
        self.done = true;
        self.best.take().map(|(_, sample)| sample)
    }
}

/// How good a poster a frame makes: the spread of its brightness (detail and contrast), with
/// frames that are nearly black, nearly white or flat ranked below every other.
fn exposure_score(sample: &gst::Sample) -> Option<f64> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer()?, &info).ok()?;
    let (stride, luma) = (frame.plane_stride()[0] as usize, frame.plane_data(0).ok()?);
    let (width, height) = (info.width() as usize, info.height() as usize);
    let (mut n, mut sum, mut squares) = (0f64, 0f64, 0f64);
    for y in (0..height).step_by(4) {
        for x in (0..width).step_by(4) {
            let v = f64::from(luma[y * stride + x]);
            n += 1.0;
            sum += v;
            squares += v * v;
        }
    }
    let mean = sum / n.max(1.0);
    let spread = (squares / n.max(1.0) - mean * mean).max(0.0).sqrt();
    let well_exposed = (24.0..=232.0).contains(&mean) && spread >= 8.0;
    Some(if well_exposed { spread } else { spread - 1000.0 })
}

/// One frame to JPEG with `jpegenc`, in a pipeline of its own.
fn encode_jpeg(sample: &gst::Sample, quality: u32) -> Result<Vec<u8>, PipelineError> {
    let failed = |what: String| PipelineError::new(ErrorCode::Internal, format!("encoding the poster: {what}"));
    let caps = sample.caps().ok_or_else(|| failed("no caps".into()))?.to_owned();
    let buffer = sample.buffer_owned().ok_or_else(|| failed("no picture".into()))?;
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).build();
    let jpeg = make_with("jpegenc", &[("quality", &quality.to_string())])?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([src.upcast_ref(), &jpeg, sink.upcast_ref()]).map_err(|e| failed(e.to_string()))?;
    gst::Element::link_many([src.upcast_ref(), &jpeg, sink.upcast_ref()]).map_err(|e| failed(e.to_string()))?;
    let _playing = Playing::start(pipeline).map_err(|e| failed(e.to_string()))?;
    src.push_buffer(buffer).map_err(|e| failed(e.to_string()))?;
    src.end_of_stream().map_err(|e| failed(e.to_string()))?;
    let encoded =
        sink.try_pull_sample(gst::ClockTime::from_seconds(10)).ok_or_else(|| failed("jpegenc gave nothing".into()))?;
    let map =
        encoded.buffer().ok_or_else(|| failed("empty".into()))?.map_readable().map_err(|e| failed(e.to_string()))?;
    Ok(map.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Poster { width: 320, at_secs: Some(2.5), quality: 70 });
        assert_rejects_unknown_field::<Poster>("height = 200");
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad = Poster { width: 4, at_secs: Some(-1.0), quality: 0 };
        let fields: Vec<_> = bad.validate().into_iter().filter_map(|p| p.field).collect();
        assert_eq!(fields, ["width", "quality", "at_secs"]);
    }

    #[test]
    fn looks_four_times_a_second_from_half_a_second_until_chosen() {
        let mut picker = Picker::new(None, Duration::from_secs(10));
        let frame = |ms: u64| gst::ClockTime::from_mseconds(1000 + ms); // the first frame is at 1 s
        let looked: Vec<u64> = (0..60).map(|i| i * 100).filter(|&ms| picker.wants(frame(ms))).collect();
        assert_eq!(
            looked,
            [
                500, 800, 1100, 1400, 1700, 2000, 2300, 2600, 2900, 3200, 3500, 3800, 4100, 4400, 4700, 5000, 5300,
                5600, 5900
            ]
        );
        picker.finish();
        assert!(!picker.wants(frame(6000)), "nothing once chosen");
    }

    #[test]
    fn at_secs_takes_the_first_frame_at_that_time() {
        gst::init().unwrap();
        let mut picker = Picker::new(Some(Duration::from_secs(3)), Duration::from_secs(10));
        let frame = |ms: u64| gst::ClockTime::from_mseconds(ms);
        assert!(!picker.wants(frame(0)) && !picker.wants(frame(2900)));
        assert!(picker.wants(frame(3000)));
        let mut buffer = gst::Buffer::new();
        buffer.get_mut().unwrap().set_pts(frame(3000));
        assert!(picker.offer(gst::Sample::builder().buffer(&buffer).build()), "chosen at once");
        assert!(picker.finish().is_some() && picker.finish().is_none(), "handed out once");
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("width = 320", Poster { width: 320, ..Poster::default() });
        assert_eq!((Poster::default().width, Poster::default().quality), (DEFAULT_WIDTH, DEFAULT_QUALITY));
    }
}
