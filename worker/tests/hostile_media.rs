//! Files built to hurt a worker are refused from their headers, for good, with a code that
//! names what they broke: no decode, no retry, no output. A real 4K 60 fps HEVC phone clip
//! still goes through. (Time to refusal and peak memory are measured by
//! `benches/hostile-media.sh`, not asserted here.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anb_core::db::Db;
use anb_core::model::VideoStatus;
use anb_worker::Outcome;
use support::*;

anb_core::on_both_databases!(
    an_8k_picture_is_too_large,
    a_thousand_frames_a_second_is_too_large,
    sixteen_sound_tracks_are_too_many_streams,
    a_billion_samples_in_the_index_are_too_many_frames,
    an_hls_playlist_renamed_mp4_is_unsupported_and_never_fetched,
    a_4k_60fps_hevc_phone_clip_still_completes,
);

/// The hostile files, made once per test process.
fn media() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ffmpeg = |args: &str| {
            let ok = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args.split_whitespace()).current_dir(&dir).status().unwrap().success();
            assert!(ok, "ffmpeg {args}");
        };
        ffmpeg("-f lavfi -i color=s=7680x4320:r=30:d=0.1 -c:v libx264 -preset ultrafast 8k.mp4");
        ffmpeg("-f lavfi -i color=s=2x2:r=1000:d=2 -c:v libx264 -preset ultrafast 1000fps.mp4");
        let maps = " -map 1:a".repeat(16);
        ffmpeg(&format!("-f lavfi -i color=s=160x90:r=10:d=1 -f lavfi -i sine=d=1 -map 0:v{maps} -c:v libx264 -c:a aac 16-audio.mp4"));
        ffmpeg("-f lavfi -i color=s=160x90:r=10:d=1 -c:v libx264 -preset ultrafast billion.mp4");
        claim_samples(&dir.join("billion.mp4"), 1_000_000_000);
        std::fs::write(
            dir.join("playlist.mp4"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        // What an iPhone records: HEVC in QuickTime with the `hvc1` tag, AAC sound.
        ffmpeg(
            "-f lavfi -i color=c=orange:s=3840x2160:r=60:d=0.5,drawbox=x=t*2000:y=500:w=300:h=300:c=blue:t=fill \
             -f lavfi -i sine=d=0.5 -c:v libx265 -preset ultrafast -x265-params log-level=error -tag:v hvc1 \
             -c:a aac -shortest phone.mov",
        );
        dir
    })
}

/// Make the first `stsz` box claim `samples` samples (the table itself stays as it was).
fn claim_samples(path: &Path, samples: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.windows(4).position(|w| w == b"stsz").expect("an stsz box");
    // type (4), version and flags (4), sample size (4), then the count.
    bytes[at + 12..at + 16].copy_from_slice(&samples.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Upload `name`, run a worker until the video settles, and check it failed once, for good,
/// with `code`, a message naming `limit` and `found`, and left nothing behind.
async fn assert_refused(db: Db, name: &str, code: &str, limit: &str, found: &str) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&media().join(name)).await;
    let outcomes = run_to_the_end(&rig, &rig.worker(options()), id).await;
    assert_eq!(outcomes, vec![Outcome::Failed(code.parse().unwrap())], "refused at the first attempt, never retried");
    let video = rig.video(id).await;
    assert_eq!(
        (video.status, video.error_code.as_deref(), video.error_retryable),
        (VideoStatus::Failed, Some(code), false)
    );
    let message = video.error_message.unwrap_or_default();
    assert!(message.contains(limit) && message.contains(found), "the message names {limit} and {found}: {message}");
    assert!(rig.outputs().is_empty(), "no output: {:?}", rig.outputs());
    assert_eq!(rig.messages().await, (0, 0), "nothing left in the queue or dead-lettered");
}

async fn an_8k_picture_is_too_large(db: Db) {
    assert_refused(db, "8k.mp4", "input-too-large", "max_width", "7680").await;
}

async fn a_thousand_frames_a_second_is_too_large(db: Db) {
    assert_refused(db, "1000fps.mp4", "input-too-large", "max_fps", "1000").await;
}

async fn sixteen_sound_tracks_are_too_many_streams(db: Db) {
    assert_refused(db, "16-audio.mp4", "input-too-large", "max_streams", "17").await;
}

async fn a_billion_samples_in_the_index_are_too_many_frames(db: Db) {
    assert_refused(db, "billion.mp4", "input-too-large", "max_frames", "1000000000").await;
}

async fn an_hls_playlist_renamed_mp4_is_unsupported_and_never_fetched(db: Db) {
    assert_refused(db, "playlist.mp4", "unsupported-input", "containers", "HLS playlist").await;
}

async fn a_4k_60fps_hevc_phone_clip_still_completes(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&media().join("phone.mov")).await;
    let outcomes = run_to_the_end(&rig, &rig.worker(options()), id).await;
    assert_eq!(outcomes, vec![Outcome::Completed], "{:?}", rig.video(id).await.error_message);
    assert_eq!(rig.outputs().len(), 1);
}
