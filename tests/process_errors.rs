//! Bad inputs and bad pipeline files get a clear error with a stable code, quickly, and leave no
//! output behind. (`anb` runs are killed after a bounded time, so a hang fails the test.)

mod support;

use std::path::Path;

use support::*;

fn assert_rejected(input: &Path, code: &str) {
    let dir = input.parent().unwrap();
    let output = dir.join("out.mp4");
    let outcome = process(input, &output, None, &[]);
    assert_eq!(outcome.error_code(), Some(code), "{:?}", outcome);
    assert_eq!(outcome.exit, 3, "input errors exit with 3");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out.mp4"))
        .collect();
    assert!(leftovers.is_empty(), "no output or partial file is left: {leftovers:?}");
}

#[test]
fn empty_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.mp4");
    std::fs::write(&input, b"").unwrap();
    assert_rejected(&input, "invalid-input");
}

#[test]
fn random_bytes_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("noise.mp4");
    // A fixed pseudo-random sequence (xorshift), so the test is repeatable.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&input, bytes).unwrap();
    assert_rejected(&input, "invalid-input");
}

#[test]
fn text_renamed_to_mp4_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.mp4");
    std::fs::write(&input, "these are my notes, not a video\n".repeat(100)).unwrap();
    assert_rejected(&input, "invalid-input");
}

// A file that starts like an MP4 but holds nothing else. qtdemux fails on it within a
// millisecond, sometimes while decodebin is still plugging it in, and decodebin drops an error
// posted in that window; before the runner watched the demuxer itself, about one run in forty
// then waited for the stall watchdog and ended `pipeline-stalled` (retried) instead of
// `invalid-input`. Four runs at a time hit the window in about one run in twenty on this
// 2-core machine (11 of 200 measured), so 80 runs hit it almost surely.
#[test]
fn an_mp4_header_over_garbage_is_invalid_input_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("header-only.mp4");
    let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
    bytes.extend(std::iter::repeat_n(0x5a, 200_000));
    std::fs::write(&input, bytes).unwrap();
    std::thread::scope(|s| {
        for lane in 0..4 {
            let (input, output) = (&input, dir.path().join(format!("out-{lane}.mp4")));
            s.spawn(move || {
                for _ in 0..20 {
                    let outcome = process(input, &output, None, &[("ANB_STALL_TIMEOUT_SECS", "20")]);
                    assert_eq!(outcome.error_code(), Some("invalid-input"), "{outcome:?}");
                }
            });
        }
    });
}

#[test]
fn audio_only_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("song.m4a");
    generate_audio_only(&input, 3);
    assert_rejected(&input, "invalid-input");
}

// An upload cut off before the index (which sits at the end) has no playable streams.
#[test]
fn truncated_file_without_its_index_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = truncated(dir.path(), &Clip { secs: 4, ..Clip::default() }, 0.5);
    assert_rejected(&input, "invalid-input");
}

// An upload cut off mid-data whose index is at the front would otherwise demux "fine" up to the
// cut and give a silently short video.
#[test]
fn truncated_file_with_its_index_first_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = truncated(dir.path(), &Clip { secs: 4, index_at_end: false, ..Clip::default() }, 0.6);
    assert_rejected(&input, "invalid-input");
}

/// `cut.mp4` in `dir`: the first `fraction` of a generated clip, as an interrupted upload.
fn truncated(dir: &Path, clip: &Clip, fraction: f64) -> std::path::PathBuf {
    let full = dir.join("full.mp4");
    generate(&full, clip);
    let bytes = std::fs::read(&full).unwrap();
    std::fs::remove_file(&full).unwrap();
    let input = dir.join("cut.mp4");
    std::fs::write(&input, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
    input
}

// A video in a codec no installed plugin decodes (the sample entry of a real H.264 MP4 renamed
// to an unknown fourcc) is the platform's limit, not a damaged file.
#[test]
fn unknown_video_codec_is_unsupported_input() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("h264.mp4");
    generate(&full, &Clip { secs: 2, audio: false, index_at_end: false, ..Clip::default() });
    let mut bytes = std::fs::read(&full).unwrap();
    let at = bytes.windows(4).position(|w| w == b"avc1").expect("an avc1 sample entry");
    bytes[at..at + 4].copy_from_slice(b"zzzz");
    std::fs::remove_file(&full).unwrap();
    let input = dir.path().join("unknown-codec.mp4");
    std::fs::write(&input, bytes).unwrap();
    assert_rejected(&input, "unsupported-input");
}

#[test]
fn a_pipeline_file_with_three_mistakes_reports_all_three() {
    let dir = tempfile::tempdir().unwrap();
    let file = repo_root().join("tests/pipelines/invalid/three-mistakes.toml");
    let (exit, stdout, stderr) = anb(&["pipeline", "check", file.to_str().unwrap()], &[]);
    assert_eq!(exit, 2, "{stdout}{stderr}");
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(stderr.contains("stage 0 (`resize`), field `widht`"), "{stderr}");
    assert!(stderr.contains("stage 1 (`encode`), field `crf`: 60 is not valid"), "{stderr}");
    assert!(stderr.contains("stage 2 (`sharpen`), field `type`: unknown stage type"), "{stderr}");

    // `anb process` refuses the same file before touching the input.
    let outcome = process(&dir.path().join("missing.mp4"), &dir.path().join("out.mp4"), Some(&file), &[]);
    assert_eq!(outcome.exit, 2);
}

#[test]
fn impossible_orders_and_unknown_elements_are_reported() {
    let file = repo_root().join("tests/pipelines/invalid/impossible-order.toml");
    let (exit, _, stderr) = anb(&["pipeline", "check", file.to_str().unwrap()], &[]);
    assert_eq!(exit, 2);
    assert!(stderr.contains("stage 1 (`resize`): comes after the encode stage"), "{stderr}");
    assert!(stderr.contains("stage 2 (`encode`): a second encode stage"), "{stderr}");
    assert!(stderr.contains("stage 3 (`gst`)") && stderr.contains("nosuchelement"), "{stderr}");
}

// A pipeline file kept elsewhere finds its logo beside it, whatever the working directory.
#[test]
fn relative_paths_resolve_against_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("assets/anb-logo.png"), dir.path().join("logo.png")).unwrap();
    let text = "[[stage]]\ntype = \"watermark\"\nimage = { path = \"logo.png\" }\n\n[[stage]]\ntype = \"encode\"\n";
    let file = pipeline_file(dir.path(), "p.toml", text);
    let (exit, stdout, stderr) = anb(&["pipeline", "check", file.to_str().unwrap()], &[]);
    assert_eq!(exit, 0, "{stderr}");
    // Inside the watermark's `marks` chain: quoted (escaped) only when the path needs it.
    let logo = dir.path().join("logo.png").display().to_string();
    let (plain, quoted) = (format!("location={logo} "), format!("location=\\\"{logo}\\\""));
    assert!(stdout.contains(&plain) || stdout.contains(&quoted), "{stdout}");
}

#[test]
fn reordering_stages_reorders_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let stages = |first: &str, second: &str| {
        format!("[[stage]]\n{first}\n\n[[stage]]\n{second}\n\n[[stage]]\ntype = \"encode\"\n")
    };
    let resize = "type = \"resize\"\nwidth = 640\nheight = 360";
    let mark = "type = \"watermark\"\ntext = { content = \"ANB\" }";
    let a = pipeline_file(dir.path(), "a.toml", &stages(resize, mark));
    let b = pipeline_file(dir.path(), "b.toml", &stages(mark, resize));
    let video_line = |file: &Path| {
        let (exit, stdout, stderr) = anb(&["pipeline", "check", file.to_str().unwrap()], &[]);
        assert_eq!(exit, 0, "{stderr}");
        stdout.lines().find(|l| l.starts_with("video:")).expect("a video line").to_owned()
    };
    let (line_a, line_b) = (video_line(&a), video_line(&b));
    let pos = |line: &str, element: &str| line.find(element).unwrap_or_else(|| panic!("{element} in {line}"));
    assert!(pos(&line_a, "anbscale") < pos(&line_a, "textoverlay"), "{line_a}");
    assert!(pos(&line_b, "textoverlay") < pos(&line_b, "anbscale"), "{line_b}");
}

// A stage that blocks (a `gst` chain sleeping 3 s per frame) stops progress: the watchdog aborts
// the run with `pipeline-stalled` instead of waiting forever.
#[test]
fn a_stalled_pipeline_is_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 2, ..Clip::default() });
    let file = pipeline_file(
        dir.path(),
        "slow.toml",
        "[[stage]]\ntype = \"gst\"\nvideo = \"identity sleep-time=3000000\"\n\n[[stage]]\ntype = \"encode\"\n",
    );
    let output = dir.path().join("out.mp4");
    let outcome = process(&input, &output, Some(&file), &[("ANB_STALL_TIMEOUT_SECS", "1")]);
    assert_eq!(outcome.error_code(), Some("pipeline-stalled"), "{outcome:?}");
    assert!(!output.exists());
}

// Ctrl-C (or SIGTERM) during a run cancels it cleanly: exit 130, no output, no partial file.
#[test]
fn an_interrupted_run_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 30, width: 640, height: 360, ..Clip::default() });
    let output = dir.path().join("out.mp4");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anb"))
        .args(["process", input.to_str().unwrap(), output.to_str().unwrap()])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the run has started writing its temporary output, then interrupt.
    let started = std::time::Instant::now();
    let partial = || {
        std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".partial"))
    };
    while !partial() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(partial(), "the run started");
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("in.mp4")], "no output or partial file");
}
