//! The media limits past the MP4 header: Matroska streams are checked from the demuxer's and
//! parsers' caps while decodebin plugs them, decoded pictures are counted while the run goes,
//! containers off the list never reach a demuxer, and a run past its time budget stops with
//! `job-timeout`. (The MP4 header cases, through the worker, are in
//! `worker/tests/hostile_media.rs`.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anb_pipeline::{BuildContext, ByteSource, ErrorCode, FileSink, FileSource, Pipeline, RunOptions};
use support::*;

fn ffmpeg(dir: &Path, args: &str, name: &str) -> PathBuf {
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .arg(name)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg {args} {name}");
    dir.join(name)
}

/// Run `anb process` and check it refused `input` with `code` and a message naming `words`,
/// leaving no output.
fn assert_refused(input: &Path, pipeline: Option<&Path>, code: &str, words: &[&str]) {
    let output = input.with_file_name("out.mp4");
    let outcome = process(input, &output, pipeline, &[]);
    assert_eq!(outcome.error_code(), Some(code), "{outcome:?}");
    assert_eq!(outcome.exit, 3, "refusals are the input's fault: exit 3");
    let message = outcome.json["error"]["message"].as_str().unwrap_or_default();
    for word in words {
        assert!(message.contains(word), "the message names {word}: {message}");
    }
    assert!(!output.exists());
}

// ffmpeg's Matroska carries no frame rate (the caps say 0/1): only the timestamps of the
// decoded pictures tell, and the first 40 of them do.
#[test]
fn a_matroska_stream_at_a_thousand_frames_a_second_is_refused_from_its_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg(dir.path(), "-f lavfi -i color=s=2x2:r=1000:d=2 -c:v libx264 -preset ultrafast", "fast.mkv");
    assert_refused(&input, None, "input-too-large", &["max_fps", "1000"]);
}

#[test]
fn an_8k_webm_is_refused_from_its_caps() {
    let dir = tempfile::tempdir().unwrap();
    let input =
        ffmpeg(dir.path(), "-f lavfi -i color=s=7680x4320:r=30:d=0.1 -c:v libvpx -deadline realtime", "big.webm");
    assert_refused(&input, None, "input-too-large", &["max_width", "7680"]);
}

/// Codecs off the list are unsupported in MP4 and in Matroska alike, and containers off the
/// list never reach a demuxer; each refusal names the list and what the file had.
#[test]
fn codecs_and_containers_off_the_lists_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let prores = "-f lavfi -i color=s=320x240:r=10:d=0.5 -c:v prores";
    let h264 = "-f lavfi -i color=s=160x90:r=10:d=1 -c:v libx264";
    let cases = [
        (prores.to_string(), "prores.mov", ["video_codecs", "apcn"]),
        (prores.to_string(), "prores.mkv", ["video_codecs", "prores"]),
        (
            "-f lavfi -i color=s=160x90:r=10:d=1 -f lavfi -i sine=d=1 -c:v libx264 -c:a ac3".to_string(),
            "ac3.mkv",
            ["audio_codecs", "ac3"],
        ),
        (h264.to_string(), "clip.avi", ["containers", "AVI"]),
        (format!("{h264} -f mpegts"), "clip.mp4", ["containers", "MPEG transport stream"]),
    ];
    for (args, name, named) in cases {
        let input = ffmpeg(dir.path(), &args, name);
        assert_refused(&input, None, "unsupported-input", &named);
    }
}

#[test]
fn decoded_frames_are_counted_where_no_header_gives_their_number() {
    let dir = tempfile::tempdir().unwrap();
    // Matroska has no sample count: only the decoded pictures can be counted.
    let input = ffmpeg(dir.path(), "-f lavfi -i color=s=160x90:r=10:d=3 -c:v libx264 -preset ultrafast", "clip.mkv");
    let pipeline = pipeline_file(
        dir.path(),
        "limits.toml",
        "[[stage]]\ntype = \"download\"\n[stage.limits]\nmax_frames = 5\n\n[[stage]]\ntype = \"encode\"\npreset = \"ultrafast\"\n",
    );
    assert_refused(&input, Some(&pipeline), "input-too-large", &["max_frames", "5"]);
    // The same file within the limits goes through.
    let roomy = pipeline_file(dir.path(), "roomy.toml", "[[stage]]\ntype = \"encode\"\npreset = \"ultrafast\"\n");
    process(&input, &dir.path().join("ok.mp4"), Some(&roomy), &[]).assert_ok();
}

/// A real file read slowly, as a stalled network would: every read waits a while.
struct SlowSource(FileSource);

impl ByteSource for SlowSource {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.0.read_at(offset, len)
    }
}

#[test]
fn a_run_past_its_time_budget_stops_with_job_timeout_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 4, ..Clip::default() });
    // A budget of 1 s whatever the length; the slow source takes longer than that for its
    // first handful of reads.
    let text =
        "[[stage]]\ntype = \"download\"\n[stage.limits]\ntimeout_base_secs = 1\ntimeout_secs_per_output_sec = 0\n\n\
                [[stage]]\ntype = \"encode\"\npreset = \"ultrafast\"\n";
    let pipeline =
        Arc::new(Pipeline::load(text, "timeout.toml", &anb_stages::registry(), &[], &BuildContext::default()).unwrap());
    let source = Arc::new(SlowSource(FileSource::open(&input).unwrap()));
    let err =
        pipeline.run_blocking(source, Box::new(FileSink::create(&output).unwrap()), RunOptions::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::JobTimeout, "{err}");
    assert!(err.message().contains("timeout_base_secs = 1"), "{}", err.message());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("in.mp4")], "no output or partial file");
}
