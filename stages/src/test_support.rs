//! Helpers for stage tests: TOML round trips and tiny generated GStreamer runs.

use std::fmt::Debug;

use anb_pipeline::elements::capsfilter;
pub use anb_pipeline::elements::Playing;
use anb_pipeline::{BuildContext, Stage};
use gst::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

pub fn assert_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = toml::to_string(value).expect("serializes");
    let back: T = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
    assert_eq!(&back, value);
}

pub fn assert_rejects_unknown_field<T: DeserializeOwned + Debug>(text: &str) {
    let err = toml::from_str::<T>(text).expect_err("an unknown field is an error");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

/// One decoded frame out of a stage.
pub struct Frame {
    pub width: i32,
    pub height: i32,
    /// Packed RGB, row-major.
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn pixel(&self, x: i32, y: i32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Every sample out of `source ! <elements> ! appsink`, run to the end. `source` is gst-launch
/// text ending in raw caps; create the elements after `gst::init()`.
pub fn samples_through(source: &str, elements: Vec<gst::Element>) -> Vec<gst::Sample> {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(&format!("{source} ! identity"), true).expect("source parses");
    let sink = gst_app::AppSink::builder().sync(false).build();
    let mut chain: Vec<gst::Element> = vec![src.upcast()];
    chain.extend(elements);
    chain.push(sink.clone().upcast());
    pipeline.add_many(&chain).unwrap();
    gst::Element::link_many(&chain).expect("the elements link");
    let _playing = Playing::start(pipeline).unwrap();
    std::iter::from_fn(|| sink.pull_sample().ok()).collect()
}

/// The last frame out of `source ! <stage's video elements>`, as packed RGB.
pub fn video_through(stage: &dyn Stage, source: &str) -> Frame {
    gst::init().unwrap();
    let mut elements = stage.video(&BuildContext::with_threads(1)).expect("stage builds");
    elements.push(gst::ElementFactory::make("videoconvert").build().unwrap());
    elements.push(capsfilter("video/x-raw,format=RGB").unwrap());
    let sample = samples_through(source, elements).pop().expect("the stage produced frames");
    let info = gst_video_info(&sample);
    let buffer = sample.buffer().unwrap().map_readable().unwrap();
    let stride = buffer.len() / info.1 as usize;
    let mut rgb = Vec::with_capacity((info.0 * info.1 * 3) as usize);
    for row in 0..info.1 as usize {
        rgb.extend_from_slice(&buffer[row * stride..row * stride + info.0 as usize * 3]);
    }
    Frame { width: info.0, height: info.1, rgb }
}

fn gst_video_info(sample: &gst::Sample) -> (i32, i32) {
    let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
    (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap())
}

pub fn is_black(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c < 24)
}

/// An empty table reads as the type's `Default`, and each field given alone replaces only
/// itself: the one `Default` is where every omitted option's value comes from.
pub fn assert_defaults_fill_in<T: DeserializeOwned + Default + PartialEq + Debug>(one_field: &str, expected: T) {
    assert_eq!(toml::from_str::<T>("").expect("an empty table"), T::default());
    let read: T = toml::from_str(one_field).unwrap_or_else(|e| panic!("{one_field}\n{e}"));
    assert_eq!(read, expected, "{one_field}");
}
