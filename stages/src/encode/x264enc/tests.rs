//! `anbx264enc` against GStreamer's `x264enc`: the same bitstream from the same settings, and
//! pictures released as soon as they are encoded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anb_pipeline::elements::Playing;
use gst::prelude::*;

/// One access unit as it came out: bytes, PTS, DTS, keyframe.
#[derive(Debug, PartialEq)]
struct Unit {
    bytes: Vec<u8>,
    pts: Option<gst::ClockTime>,
    dts: Option<gst::ClockTime>,
    keyframe: bool,
}

/// A moving test picture with B-frame-worthy motion, its colorimetry stated so both encoders
/// write the same VUI.
const SOURCE: &str = "videotestsrc num-buffers=48 pattern=ball motion=sweep animation-mode=frames \
    ! video/x-raw,format=I420,width=320,height=240,framerate=30/1,colorimetry=bt709,pixel-aspect-ratio=1/1";

fn encode(encoder: &str) -> (Vec<Unit>, gst::Caps) {
    fill_new_allocations();
    gst::init().unwrap();
    super::register().unwrap();
    let caps = if encoder.contains("x264") {
        "video/x-h264,stream-format=byte-stream,alignment=au,profile=high"
    } else {
        "video/x-raw"
    };
    let description = format!(
        "{SOURCE} ! {encoder} ! {caps} \
         ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let pipeline = Playing::start(pipeline).unwrap();
    let mut units = Vec::new();
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
        let buffer = sample.buffer().unwrap();
        units.push(Unit {
            bytes: buffer.map_readable().unwrap().to_vec(),
            pts: buffer.pts(),
            dts: buffer.dts(),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        });
    }
    let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    if let Some(error) = error {
        panic!("{encoder}: {error:?}");
    }
    (units, caps.unwrap_or_else(|| panic!("{encoder} produced no output")))
}

/// x264 reads a few bytes of memory it has allocated but not written (frame padding), so two
/// encoders in one process write slightly different streams once the heap holds leftovers (the
/// first one in a fresh process sees zeroed memory; `x264enc` does the same). glibc's "perturb"
/// option fills every new allocation with one byte, which makes the streams comparable.
fn fill_new_allocations() {
    extern "C" {
        fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
    }
    const M_PERTURB: std::os::raw::c_int = -6;
    // SAFETY: a glibc tunable, safe to set at any time.
    assert_eq!(unsafe { mallopt(M_PERTURB, 0x55) }, 1);
}

/// The x264 options line in the stream's SEI, for messages.
fn x264_options(units: &[Unit]) -> String {
    let bytes = &units[0].bytes;
    let text = String::from_utf8_lossy(bytes);
    text.find("options: ").map_or_else(String::new, |at| text[at..].split('\0').next().unwrap_or("").to_string())
}

/// Byte for byte, with timestamps and keyframes; a mismatch names the first differing unit.
fn assert_same(ours: &[Unit], theirs: &[Unit]) {
    assert_eq!(ours.len(), theirs.len(), "access units");
    if let Some(i) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        let (a, b) = (&ours[i], &theirs[i]);
        let first = a.bytes.iter().zip(&b.bytes).position(|(x, y)| x != y);
        panic!(
            "access unit {i} differs at byte {first:?}: {} vs {} bytes, pts {:?}/{:?}, dts {:?}/{:?}, keyframe {}/{}\nours:   {}\ntheirs: {}",
            a.bytes.len(),
            b.bytes.len(),
            a.pts,
            b.pts,
            a.dts,
            b.dts,
            a.keyframe,
            b.keyframe,
            x264_options(ours),
            x264_options(theirs)
        );
    }
}

/// x264enc with the options that make it write what anbx264enc writes (no access unit
/// delimiters; constant quality without a VBV cap).
fn both(settings: &str) -> (Vec<Unit>, Vec<Unit>, gst::Caps) {
    let ours = encode(&format!("anbx264enc {settings}"));
    let theirs = encode(&format!("x264enc aud=false pass=qual vbv-buf-capacity=0 {settings}"));
    (ours.0, theirs.0, ours.1)
}

#[test]
fn writes_the_same_bitstream_as_x264enc_one_thread() {
    let (ours, theirs, caps) = both("speed-preset=veryfast quantizer=23 key-int-max=20 threads=1");
    assert_eq!(ours.len(), 48);
    assert!(ours.iter().filter(|u| u.keyframe).count() >= 3, "a keyframe at least every 20 frames");
    assert!(ours.iter().any(|u| u.pts != u.dts), "B-frames reorder the stream");
    assert_same(&ours, &theirs);
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<&str>("profile").unwrap(), "high");
    assert_eq!(s.get::<&str>("stream-format").unwrap(), "byte-stream");
}

/// The same x264 options, access units, timestamps and keyframes, and a stream of about the same
/// size. Not byte for byte: with frame threads x264 itself is not reproducible run to run (it reads
/// memory another thread may not have written yet), so two x264enc runs in fresh processes with
/// `MALLOC_PERTURB_` set and both cores busy differ about once in forty.
fn assert_same_encoding(ours: &[Unit], theirs: &[Unit]) {
    assert_eq!(x264_options(ours), x264_options(theirs));
    assert!(x264_options(ours).contains(" threads=3 "), "{}", x264_options(ours));
    let timing = |units: &[Unit]| units.iter().map(|u| (u.pts, u.dts, u.keyframe)).collect::<Vec<_>>();
    assert_eq!(timing(ours), timing(theirs));
    let size = |units: &[Unit]| units.iter().map(|u| u.bytes.len()).sum::<usize>() as f64;
    let ratio = size(ours) / size(theirs);
    assert!((0.98..=1.02).contains(&ratio), "stream sizes differ by more than 2 %: {ratio}");
}

#[test]
fn encodes_like_x264enc_with_frame_threads() {
    let (ours, theirs, _) = both("speed-preset=veryfast quantizer=23 key-int-max=250 threads=3");
    assert_eq!(ours.len(), 48);
    assert_same_encoding(&ours, &theirs);
}

#[test]
fn writes_the_same_bitstream_as_x264enc_at_an_average_bitrate() {
    let ours = encode("anbx264enc speed-preset=faster bitrate=300 key-int-max=250 threads=1");
    let theirs = encode("x264enc aud=false speed-preset=faster pass=cbr bitrate=300 key-int-max=250 threads=1");
    assert_eq!(ours.0.len(), 48);
    assert_same(&ours.0, &theirs.0); // average bitrate with x264enc's VBV
}

/// A buffer whose memory counts its own release.
fn counted_picture(size: usize, released: &Arc<AtomicUsize>) -> gst::Buffer {
    struct Counted(Vec<u8>, Arc<AtomicUsize>);
    impl AsRef<[u8]> for Counted {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    gst::Buffer::from_slice(Counted(vec![128; size], released.clone()))
}

/// How many of `frames` pictures pushed one by one were released by the time each push returned
/// (at the worst moment), for an encoder element.
fn pictures_held(encoder: &str, frames: u64) -> u64 {
    gst::init().unwrap();
    super::register().unwrap();
    let pipeline = gst::parse::launch(&format!("{encoder} name=enc ! fakesink sync=false")).unwrap();
    let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
    let enc = pipeline.by_name("enc").unwrap();
    let pipeline = Playing::start(pipeline).unwrap();
    let sink = enc.static_pad("sink").unwrap();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 160, 120).fps(30).build().unwrap();
    assert!(sink.send_event(gst::event::StreamStart::new("pictures")));
    assert!(sink.send_event(gst::event::Caps::new(&info.to_caps().unwrap())));
    assert!(sink.send_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
    let released = Arc::new(AtomicUsize::new(0));
    let mut most_held = 0;
    for n in 0..frames {
        let mut picture = counted_picture(info.size(), &released);
        picture.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(n * 1000 / 30));
        sink.chain(picture).unwrap();
        most_held = most_held.max(n + 1 - released.load(Ordering::SeqCst) as u64);
    }
    sink.send_event(gst::event::Eos::new());
    drop(pipeline); // back to Null: the encoder lets go of what it still holds
    assert_eq!(released.load(Ordering::SeqCst) as u64, frames, "every picture is released in the end");
    most_held
}

#[test]
fn releases_each_picture_once_x264_has_copied_it() {
    let settings = "speed-preset=veryfast threads=1";
    assert_eq!(pictures_held(&format!("anbx264enc {settings}"), 30), 0);
    // The reason for the element: x264enc holds every picture x264 has not output yet.
    assert!(pictures_held(&format!("x264enc {settings}"), 30) > 5);
}

#[test]
fn a_new_frame_size_mid_stream_drains_and_starts_a_new_sequence() {
    gst::init().unwrap();
    super::register().unwrap();
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time ! anbx264enc speed-preset=veryfast threads=1 ! appsink name=sink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let _playing = Playing::start(pipeline).unwrap();
    let mut n = 0u64;
    for (width, height) in [(160, 120), (192, 144)] {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height).fps(30).build().unwrap();
        src.set_caps(Some(&info.to_caps().unwrap()));
        for _ in 0..12 {
            let mut picture = gst::Buffer::from_mut_slice(vec![(n * 20 % 256) as u8; info.size()]);
            picture.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(n * 1000 / 30));
            src.push_buffer(picture).unwrap();
            n += 1;
        }
    }
    src.end_of_stream().unwrap();
    let mut units = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let width = sample.caps().unwrap().structure(0).unwrap().get::<i32>("width").unwrap();
        let buffer = sample.buffer().unwrap();
        units.push((width, !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)));
    }
    assert_eq!(units.len(), 24, "every picture of both sizes comes out");
    assert!(units[..12].iter().all(|&(w, _)| w == 160), "{units:?}");
    assert_eq!(units[12], (192, true), "the new size starts with a keyframe: {units:?}");
    assert!(units[12..].iter().all(|&(w, _)| w == 192));
}

/// The enum properties take x264's names in gst-launch text, as `x264enc` does, and refuse others.
#[test]
fn presets_and_profiles_take_x264s_names_and_refuse_others() {
    gst::init().unwrap();
    super::register().unwrap();
    let element = gst::parse::launch("anbx264enc speed-preset=slower profile=main").unwrap();
    assert_eq!(element.property::<super::Preset>("speed-preset"), super::Preset::Slower);
    assert_eq!(element.property::<super::Profile>("profile"), super::Profile::Main);
    for typo in ["anbx264enc speed-preset=quick", "anbx264enc profile=extended"] {
        assert!(gst::parse::launch(typo).is_err(), "{typo}");
    }
}
