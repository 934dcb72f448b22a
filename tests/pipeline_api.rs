//! The pipeline as the worker uses it (library API, not the CLI): progress events, the run
//! report, cancellation, and what is left behind when a run is cancelled.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anb_pipeline::{BuildContext, CancelToken, ErrorCode, FileSink, FileSource, Pipeline, Progress, RunOptions};
use support::*;

fn showcase() -> Arc<Pipeline> {
    let text = std::fs::read_to_string(repo_root().join("pipeline.toml")).unwrap();
    let ctx = BuildContext { base_dir: Some(repo_root()), ..BuildContext::default() };
    Arc::new(Pipeline::load(&text, "pipeline.toml", &anb_stages::registry(), &[], &ctx).unwrap())
}

#[test]
fn progress_rises_to_the_expected_duration_and_the_report_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 4, ..Clip::default() });
    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let seen = events.clone();
    let opts = RunOptions {
        on_progress: Some(Box::new(move |p: &Progress| seen.lock().unwrap().push(p.clone()))),
        progress_interval: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let source = Arc::new(FileSource::open(&input).unwrap());
    let report = showcase().run_blocking(source, Box::new(FileSink::create(&output).unwrap()), opts).unwrap();

    let events = events.lock().unwrap();
    assert!(!events.is_empty());
    let last = events.last().unwrap();
    assert_eq!(last.fraction().map(|f| (f * 100.0).round()), Some(100.0), "{last:?}");
    assert!(events.windows(2).all(|w| w[0].position <= w[1].position), "positions never go back");
    let expected = last.expected.unwrap().as_secs_f64();
    assert!((expected - 4.0).abs() < 0.1, "expected {expected} s");
    assert!((report.output_duration.as_secs_f64() - 4.0).abs() < 0.15);
    assert_eq!(report.bytes_written, std::fs::metadata(&output).unwrap().len());
    assert_eq!(report.input_size, std::fs::metadata(&input).unwrap().len());
    assert!(report.realtime_factor() > 0.0);
}

#[test]
fn a_cancelled_run_stops_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 20, width: 640, height: 360, ..Clip::default() });
    let cancel = CancelToken::default();
    let canceller = cancel.clone();
    let opts = RunOptions {
        cancel: cancel.clone(),
        // Cancel as soon as the run has made some progress.
        on_progress: Some(Box::new(move |p: &Progress| {
            if p.position > Duration::ZERO {
                canceller.cancel();
            }
        })),
        progress_interval: Duration::from_millis(20),
        ..RunOptions::default()
    };
    let source = Arc::new(FileSource::open(&input).unwrap());
    let err = showcase().run_blocking(source, Box::new(FileSink::create(&output).unwrap()), opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled);
    assert!(cancel.is_cancelled());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("in.mp4")], "no output or partial file");
}

#[test]
fn the_demuxer_reads_a_bounded_amount_ahead_of_a_slow_video_branch() {
    // 6 s of 12 Mbit/s picture (snow does not compress) with sound, behind a video branch slowed
    // to 10 ms a frame on one CPU. The sound runs ahead into its branch's queue (5 s), and
    // decodebin would let the video's demuxed queue grow with it: most of the file read ahead.
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    gst_launch(&format!(
        "videotestsrc num-buffers=180 pattern=snow ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! x264enc speed-preset=ultrafast bitrate=12000 key-int-max=60 ! h264parse ! queue ! mux. \
         audiotestsrc num-buffers=282 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
         ! avenc_aac ! aacparse ! queue ! mux. mp4mux name=mux ! filesink location={}",
        input.display()
    ));
    let input_size = std::fs::metadata(&input).unwrap().len();
    assert!(input_size > 8_000_000, "the clip is {input_size} bytes: too small to show the bound");
    let text = "[[stage]]\ntype = \"gst\"\nvideo = \"identity sleep-time=10000\"\n\
                [[stage]]\ntype = \"encode\"\npreset = \"ultrafast\"\n";
    let ctx = BuildContext::with_threads(1);
    let plan = Arc::new(Pipeline::load(text, "slow.toml", &anb_stages::registry(), &[], &ctx).unwrap());

    let lead = Arc::new(Mutex::new(0f64));
    let seen = lead.clone();
    let opts = RunOptions {
        ctx,
        // Bytes read beyond those of the pictures already encoded (the picture is the bulk of
        // the file and comes at an even rate).
        on_progress: Some(Box::new(move |p: &Progress| {
            let encoded = input_size as f64 * p.position.as_secs_f64() / 6.0;
            let mut lead = seen.lock().unwrap();
            *lead = lead.max(p.bytes_read as f64 - encoded);
        })),
        progress_interval: Duration::from_millis(20),
        ..RunOptions::default()
    };
    let source = Arc::new(FileSource::open(&input).unwrap());
    let report = plan.run_blocking(source, Box::new(FileSink::create(&output).unwrap()), opts).unwrap();
    assert!((report.output_duration.as_secs_f64() - 6.0).abs() < 0.15, "{report:?}");
    let lead = *lead.lock().unwrap();
    // 2 MiB in the demuxed queue, a few pictures in the branch, the sound's queue.
    assert!(lead > 0.0, "no progress was seen while the run went on");
    assert!(lead < 3.0 * 1024.0 * 1024.0, "the demuxer read {:.1} MiB ahead of the encoder", lead / 1048576.0);
}
