//! The element against `avdec_h264` on the same stream: the same libavcodec decodes both, so
//! every picture must be identical, pixel for pixel, on either output path.

use crate::elements::Playing;
use gst::prelude::*;
use gst_video::prelude::*;

/// A short H.264 stream (High profile, so both decoders get the same one) with B-frames at a size that is no multiple of 16 (the decoder pads
/// its pictures: strides and plane sizes differ from a packed frame).
const ENCODED: &str =
    "videotestsrc num-buffers=24 pattern=ball ! video/x-raw,format=I420,width=330,height=186,framerate=25/1 ! \
    x264enc bframes=2 key-int-max=10 speed-preset=veryfast ! video/x-h264,profile=high ! h264parse";

/// Every decoded frame, packed (no stride padding), from `decoder ! after ! appsink`.
fn decode(decoder: &str, after: &str) -> Vec<Vec<u8>> {
    crate::init().unwrap();
    let description = format!("{ENCODED} ! {decoder} ! {after} ! appsink name=out sync=false");
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let _playing = Playing::start(pipeline).unwrap();
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap();
        let mut packed = Vec::new();
        for plane in 0..3u32 {
            let (w, h) = (frame.comp_width(plane) as usize, frame.comp_height(plane) as usize);
            let stride = frame.plane_stride()[plane as usize] as usize;
            let data = frame.plane_data(plane).unwrap();
            for row in 0..h {
                packed.extend_from_slice(&data[row * stride..row * stride + w]);
            }
        }
        frames.push(packed);
    }
    frames
}

#[test]
fn pictures_shared_through_video_meta_equal_avdec_h264s() {
    // A scaler proposes GstVideoMeta: the element hands out libavcodec's pictures uncopied.
    let scale = "videoscale ! video/x-raw,width=166,height=94";
    let ours = decode(super::ELEMENT_NAME, scale);
    let reference = decode("avdec_h264", scale);
    assert_eq!(ours.len(), 24, "every frame decoded");
    assert!(ours == reference, "pictures differ from avdec_h264's");
}

#[test]
fn pictures_copied_for_a_sink_without_video_meta_equal_avdec_h264s() {
    let ours = decode(super::ELEMENT_NAME, "identity");
    let reference = decode("avdec_h264", "identity");
    assert_eq!(ours.len(), 24);
    assert!(ours == reference, "pictures differ from avdec_h264's");
}

#[test]
fn decodebin_prefers_it_for_8_bit_h264_only() {
    crate::init().unwrap();
    let factory = gst::ElementFactory::find(super::ELEMENT_NAME).unwrap();
    let avdec = gst::ElementFactory::find("avdec_h264").unwrap();
    assert!(factory.rank() > avdec.rank());
    let high = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", "high")
        .build();
    let high10 = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", "high-10")
        .build();
    assert!(factory.can_sink_all_caps(&high));
    assert!(!factory.can_sink_any_caps(&high10), "10-bit streams are left to avdec_h264");
}
