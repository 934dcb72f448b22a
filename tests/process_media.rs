//! `anb process` with the showcase pipeline on generated clips: what a viewer would notice.

mod support;

use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// The showcase deliverable: a clip longer than 30 s with its index at the end comes out as at
// most 30.1 s of 1280x720 H.264 + AAC, in sync, with the index at the front, and the input is
// not read whole.
#[test]
fn long_clip_with_index_at_end_becomes_the_showcase_output() {
    let dir = tmp();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 45, ..Clip::default() });
    let boxes = top_level_boxes(&input);
    assert!(
        boxes.iter().position(|b| b == "mdat") < boxes.iter().position(|b| b == "moov"),
        "input has moov last: {boxes:?}"
    );

    let outcome = process(&input, &output, None, &[]);
    outcome.assert_ok();

    let p = probe(&output);
    let video = p.video();
    let audio = p.audio().expect("audio is kept");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["pix_fmt"], "yuv420p", "browsers need 4:2:0");
    assert_eq!(video["profile"], "High");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(audio["codec_name"], "aac");
    let (v, a) = (Probe::duration(video), Probe::duration(audio));
    assert!(p.format_duration() <= 30.1 && v > 29.5, "video {v} s, file {} s", p.format_duration());
    assert!((v - a).abs() < 0.1, "audio {a} s and video {v} s differ by 100 ms or more");

    let boxes = top_level_boxes(&output);
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(moov.is_some() && moov < mdat, "moov before mdat: {boxes:?}");

    let size = std::fs::metadata(&input).unwrap().len();
    let read = outcome.json["bytes_read"].as_u64().unwrap();
    assert!(read < size * 85 / 100, "read {read} of {size} bytes for 30 of 45 s");
    assert_eq!(outcome.json["bytes_written"].as_u64(), Some(std::fs::metadata(&output).unwrap().len()));
}

#[test]
fn short_clip_keeps_its_length() {
    let (_dir, output) = showcase(&Clip { secs: 5, ..Clip::default() }, &[]);
    let p = probe(&output);
    let v = Probe::duration(p.video());
    assert!((v - 5.0).abs() < 0.15, "5 s in, {v} s out");
    assert!((Probe::duration(p.audio().unwrap()) - 5.0).abs() < 0.15);
}

#[test]
fn four_by_three_is_pillarboxed() {
    let (_dir, output) = showcase(&Clip { secs: 2, width: 160, height: 120, pattern: "white", ..Clip::default() }, &[]);
    let f = frame_at(&output, 1.0);
    assert_eq!((f.width, f.height), (1280, 720));
    // 4:3 in 16:9: the picture is 960 wide, bars of 160 on each side.
    assert!(f.is_black(60, 360) && f.is_black(1220, 360), "side bars are black");
    assert!(!f.is_black(640, 360) && !f.is_black(200, 360) && !f.is_black(1080, 360), "the picture fills the middle");
    assert!(!f.is_black(640, 5) && !f.is_black(640, 715), "no bars at top or bottom");
}

#[test]
fn cinema_21_by_9_is_letterboxed() {
    let (_dir, output) = showcase(&Clip { secs: 2, width: 336, height: 144, pattern: "white", ..Clip::default() }, &[]);
    let f = frame_at(&output, 1.0);
    // 21:9 in 16:9: the picture is about 549 high, bars of about 85 above and below.
    assert!(f.is_black(640, 30) && f.is_black(640, 690), "top and bottom bars are black");
    assert!(!f.is_black(640, 360) && !f.is_black(640, 110) && !f.is_black(640, 610), "the picture fills the middle");
    assert!(!f.is_black(300, 360) && !f.is_black(980, 360), "no side bars");
}

// A phone clip: landscape pixels plus rotation metadata. The output must look like the clip does
// in a player that honours the metadata (ffmpeg here): same way up, fitted into 1280x720.
#[test]
fn rotated_phone_clips_come_out_upright() {
    let dir = tmp();
    let land = dir.path().join("land.mp4");
    generate(&land, &Clip { secs: 2, width: 320, height: 180, pattern: "smpte", audio: false, ..Clip::default() });
    // No watermark: it would be compared with a reference that has none.
    let pipeline =
        pipeline_file(dir.path(), "p.toml", "[[stage]]\ntype = \"resize\"\n\n[[stage]]\ntype = \"encode\"\n");
    for degrees in [90, 180, 270] {
        let (input, output) =
            (dir.path().join(format!("in{degrees}.mp4")), dir.path().join(format!("out{degrees}.mp4")));
        // GStreamer 1.22's mp4mux does not write rotation; ffmpeg adds it without re-encoding.
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&land)
            .args(["-c", "copy", "-metadata:s:v:0", &format!("rotate={degrees}")])
            .arg(&input)
            .status()
            .unwrap();
        assert!(status.success());
        let reference = frame_at(&input, 0.5); // ffmpeg applies the rotation when decoding
        process(&input, &output, Some(&pipeline), &[]).assert_ok();
        let f = frame_at(&output, 0.5);
        assert_eq!((f.width, f.height), (1280, 720));

        // Where the reference picture lands in the output when fitted.
        let scale = (1280.0 / reference.width as f64).min(720.0 / reference.height as f64);
        let (pw, ph) = (reference.width as f64 * scale, reference.height as f64 * scale);
        let (px, py) = ((1280.0 - pw) / 2.0, (720.0 - ph) / 2.0);
        if degrees != 180 {
            assert!(f.is_black(40, 360) && f.is_black(1240, 360), "{degrees}: portrait content is pillarboxed");
        }
        // Compare colours on a grid, at points inside a uniform area of the reference (away from
        // the edges of the SMPTE bars, where scaling blends neighbours).
        let distance = |a: [u8; 3], b: [u8; 3]| -> i32 {
            a.iter().zip(b.iter()).map(|(x, y)| (*x as i32 - *y as i32).abs()).sum()
        };
        let mut compared = 0;
        for gy in 1..10 {
            for gx in 1..10 {
                let (rx, ry) = (gx as f64 / 10.0, gy as f64 / 10.0);
                let (x, y) = ((rx * reference.width as f64) as u32, (ry * reference.height as f64) as u32);
                let r = reference.pixel(x, y);
                let uniform = [(-4i32, 0i32), (4, 0), (0, -4), (0, 4)]
                    .iter()
                    .all(|(dx, dy)| distance(r, reference.pixel((x as i32 + dx) as u32, (y as i32 + dy) as u32)) < 30);
                if !uniform {
                    continue;
                }
                let o = f.pixel((px + rx * pw) as u32, (py + ry * ph) as u32);
                assert!(distance(r, o) < 90, "{degrees}: at ({rx}, {ry}) reference {r:?}, output {o:?}");
                compared += 1;
            }
        }
        assert!(compared >= 20, "{degrees}: only {compared} points compared");
    }
}

#[test]
fn clip_without_audio_gives_video_only_output() {
    let (_dir, output) = showcase(&Clip { secs: 3, audio: false, ..Clip::default() }, &[]);
    let p = probe(&output);
    assert!(p.audio().is_none());
    assert!((Probe::duration(p.video()) - 3.0).abs() < 0.15);
}

#[test]
fn audio_strip_removes_the_sound() {
    let (_dir, output) = showcase(&Clip { secs: 2, ..Clip::default() }, &[("ANB_STAGE_AUDIO_MODE", "strip")]);
    assert!(probe(&output).audio().is_none());
}

// The showcase watermark: text bottom-right, logo top-left; nothing else on a black clip.
#[test]
fn watermark_marks_its_corners_and_nothing_else() {
    let (_dir, output) = showcase(&Clip { secs: 2, width: 320, height: 180, pattern: "black", ..Clip::default() }, &[]);
    let f = frame_at(&output, 1.0);
    let marked = |x0: u32, y0: u32, x1: u32, y1: u32| {
        (y0..y1)
            .step_by(2)
            .flat_map(|y| (x0..x1).step_by(2).map(move |x| (x, y)))
            .filter(|&(x, y)| !f.is_black(x, y))
            .count()
    };
    assert!(marked(1000, 560, 1280, 720) > 50, "the text mark is bottom-right");
    assert!(marked(0, 0, 320, 140) > 50, "the logo is top-left");
    assert_eq!(marked(320, 140, 1000, 560), 0, "the middle of the picture is untouched");
    assert_eq!(marked(0, 400, 300, 720) + marked(1000, 0, 1280, 300), 0, "the other corners are untouched");
}

#[test]
fn trim_window_can_start_later_and_env_overrides_apply() {
    let (_dir, output) = showcase(&Clip { secs: 8, ..Clip::default() }, &TRIM_2_TO_6_5);
    assert_trimmed_2_to_6_5(&output);
}

/// The window `trim` takes with these overrides: from 2 s, at most 4.5 s.
const TRIM_2_TO_6_5: [(&str, &str); 2] =
    [("ANB_STAGE_TRIM_START_SECS", "2"), ("ANB_STAGE_TRIM_MAX_DURATION_SECS", "4.5")];

/// Both streams 4.5 s long, starting at zero.
fn assert_trimmed_2_to_6_5(output: &std::path::Path) {
    let p = probe(output);
    let (v, a) = (Probe::duration(p.video()), Probe::duration(p.audio().unwrap()));
    assert!((v - 4.5).abs() < 0.15, "video {v} s");
    assert!((a - 4.5).abs() < 0.15, "audio {a} s");
    let start: f64 = p.video()["start_time"].as_str().unwrap().parse().unwrap();
    assert!(start.abs() < 0.1, "the output starts at zero, not at {start}");
}

// On one CPU the video branch has no queues (decoder to encoder in one thread, the trim
// window's probes on a passthrough head): the cut, the shift to zero and audio sync must hold
// there too.
#[test]
fn a_one_cpu_run_without_video_queues_trims_in_sync() {
    let dir = tmp();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 8, ..Clip::default() });
    let (i, o) = (input.to_string_lossy().into_owned(), output.to_string_lossy().into_owned());
    let (exit, _, stderr) = anb(&["process", &i, &o, "--threads", "1"], &TRIM_2_TO_6_5);
    assert_eq!(exit, 0, "{stderr}");
    assert_trimmed_2_to_6_5(&output);
}

/// The audio packets of a file, as (size, MD5) in order.
fn audio_packets(path: &std::path::Path) -> Vec<(String, String)> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split(',').map(str::trim).collect();
            (cols[4].to_string(), cols[5].to_string())
        })
        .collect()
}

// AAC-LC stereo already fits the output: its packets are copied, not decoded and re-encoded
// (no generation loss, no encoder's CPU or memory).
#[test]
fn aac_lc_sound_passes_through_untouched() {
    let dir = tmp();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, &Clip { secs: 3, ..Clip::default() });
    process(&input, &output, None, &[]).assert_ok();
    let (sent, kept) = (audio_packets(&input), audio_packets(&output));
    assert!(kept.len() > 100, "{} packets kept", kept.len());
    assert_eq!(kept, sent[..kept.len()], "the output's packets are the input's");
}

// Passthrough is off when a stage changes the sound or the encode stage says so; sound that
// does not fit (MP3 here) is always encoded to AAC.
#[test]
fn sound_that_changes_or_does_not_fit_is_encoded_to_aac() {
    let dir = tmp();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 2, ..Clip::default() });
    let sent = audio_packets(&input);
    for env in [("ANB_STAGE_AUDIO_VOLUME", "0.5"), ("ANB_STAGE_ENCODE_AUDIO_PASSTHROUGH", "false")] {
        let output = dir.path().join("out.mp4");
        process(&input, &output, None, &[env]).assert_ok();
        let kept = audio_packets(&output);
        assert_eq!(probe(&output).audio().expect("sound kept")["codec_name"], "aac", "{env:?}");
        assert!(kept.len() > 50 && kept != sent[..kept.len()], "{env:?}: re-encoded");
    }

    let mp3 = dir.path().join("mp3.mp4");
    gst_launch(&format!(
        "videotestsrc num-buffers=20 ! video/x-raw,format=I420,width=160,height=120,framerate=10/1 ! x264enc speed-preset=ultrafast \
         ! h264parse ! queue ! mux. audiotestsrc num-buffers=90 samplesperbuffer=1024 ! audio/x-raw,rate=44100,channels=2 \
         ! lamemp3enc ! mpegaudioparse ! queue ! mux. mp4mux name=mux ! filesink location={}",
        mp3.display()
    ));
    let output = dir.path().join("from-mp3.mp4");
    process(&mp3, &output, None, &[]).assert_ok();
    let audio = probe(&output).audio().expect("sound kept").clone();
    assert_eq!((audio["codec_name"].as_str(), audio["profile"].as_str()), (Some("aac"), Some("LC")));
}

// The `poster` stage after resize and watermark: a JPEG of the processed picture beside the
// output, from the same run, not frame 0 (black here, as many phone clips start) but a
// well-exposed frame of the first third. Without the stage nothing is written beside it.
#[test]
fn a_poster_stage_writes_a_well_exposed_still_beside_the_output() {
    let dir = tmp();
    let input = dir.path().join("in.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=black:s=320x240:r=10:d=1",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=10:d=5",
        ])
        .args([
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(made.success());
    // The showcase pipeline has the stage; here at 320 px, and once without it.
    let showcase = std::fs::read_to_string(repo_root().join("pipeline.toml"))
        .unwrap()
        .replace("assets/anb-logo.png", &repo_root().join("assets/anb-logo.png").to_string_lossy());
    let with_poster = showcase.replace("type = \"poster\"\nwidth = 640", "type = \"poster\"\nwidth = 320");
    let without = showcase.replace("[[stage]]\ntype = \"poster\"\nwidth = 640", "");
    assert!(with_poster != showcase && without != showcase, "the showcase pipeline has a poster stage of width 640");
    let file = pipeline_file(dir.path(), "poster.toml", &with_poster);

    let output = dir.path().join("clip.mp4");
    let outcome = process(&input, &output, Some(&file), &[]);
    outcome.assert_ok();
    let poster = dir.path().join("clip.poster.jpg");
    assert_eq!(outcome.json["side_outputs"][0]["path"], poster.to_string_lossy().as_ref());
    let bytes = std::fs::read(&poster).unwrap();
    assert_eq!(&bytes[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    let still = frame_at(&poster, 0.0);
    assert_eq!((still.width, still.height), (320, 180), "the processed 16:9 picture at the poster's width");
    let lit = (0..still.height).step_by(4).flat_map(|y| (0..still.width).step_by(4).map(move |x| (x, y)));
    let (all, black) = lit.fold((0, 0), |(n, b), (x, y)| (n + 1, b + still.is_black(x, y) as u32));
    assert!(black * 2 < all, "{black} of {all} samples are black: the black opening was chosen");
    assert!(probe(&output).video()["width"] == 1280, "the main output is unchanged");

    let plain = dir.path().join("plain.mp4");
    process(&input, &plain, Some(&pipeline_file(dir.path(), "plain.toml", &without)), &[]).assert_ok();
    assert!(!dir.path().join("plain.poster.jpg").exists(), "no poster without the stage");
}
