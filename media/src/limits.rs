//! [`InputLimits`]: what one input may ask of a worker, and the checks against them.
//!
//! The defaults let real phone clips through (3840×2160 at 60 fps in either orientation, 1080p
//! slow motion at 240 fps, an hour of video) and refuse what no phone makes: an 8K picture, a
//! thousand frames a second, a dozen sound tracks, a sample table of a billion entries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{codecs, MediaFacts, Refusal, TrackKind};

/// The pixel rate of 1080p at 30 fps: one second of it is one second of reference work.
pub const REFERENCE_PIXEL_RATE: f64 = 1920.0 * 1080.0 * 30.0;

/// Limits on one input, set in `pipeline.toml` (`[stage.limits]` of the `download` stage) and
/// published by `GET /api/upload-limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputLimits {
    /// Widest picture, in pixels.
    pub max_width: u32,
    /// Tallest picture, in pixels.
    pub max_height: u32,
    /// Largest picture area (width × height).
    pub max_pixels: u64,
    /// Highest frame rate, in frames per second.
    pub max_fps: u32,
    /// Most pixels a second (width × height × fps).
    pub max_pixel_rate: u64,
    /// Most video and audio streams in one file.
    pub max_streams: u32,
    /// Longest input, in seconds.
    pub max_duration_secs: u32,
    /// Most samples (frames of video, packets of audio) in one stream.
    pub max_frames: u64,
    /// Wall-clock budget of one run: this many seconds...
    pub timeout_base_secs: u32,
    /// ...plus this many per second of output at the reference pixel rate (1080p30); a faster
    /// or larger input scales it by its pixel rate.
    pub timeout_secs_per_output_sec: u32,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_width: 4096,
            max_height: 4096,
            max_pixels: 4096 * 2160,
            max_fps: 240,
            max_pixel_rate: 500_000_000,
            max_streams: 8,
            max_duration_secs: 3600,
            max_frames: 216_000,
            timeout_base_secs: 60,
            timeout_secs_per_output_sec: 4,
        }
    }
}

impl InputLimits {
    /// The picture size, on its own (a decoder's output caps, a parser's caps).
    pub fn check_picture(&self, width: u32, height: u32) -> Result<(), Refusal> {
        if width > self.max_width {
            return Err(Refusal::too_large(
                "max_width",
                width,
                self.max_width,
                &format!("the picture is {width}×{height}"),
            ));
        }
        if height > self.max_height {
            return Err(Refusal::too_large(
                "max_height",
                height,
                self.max_height,
                &format!("the picture is {width}×{height}"),
            ));
        }
        let pixels = width as u64 * height as u64;
        if pixels > self.max_pixels {
            return Err(Refusal::too_large(
                "max_pixels",
                pixels,
                self.max_pixels,
                &format!("the picture is {width}×{height} = {pixels} pixels"),
            ));
        }
        Ok(())
    }

    /// Frame rate and pixel rate of a picture stream.
    pub fn check_rate(&self, width: u32, height: u32, fps: f64) -> Result<(), Refusal> {
        if fps > self.max_fps as f64 + 0.5 {
            return Err(Refusal::too_large(
                "max_fps",
                format!("{fps:.0}"),
                self.max_fps,
                &format!("the video runs at {fps:.0} frames per second"),
            ));
        }
        let rate = width as f64 * height as f64 * fps;
        if rate > self.max_pixel_rate as f64 {
            return Err(Refusal::too_large(
                "max_pixel_rate",
                format!("{rate:.0}"),
                self.max_pixel_rate,
                &format!("{width}×{height} at {fps:.0} fps is {rate:.0} pixels a second"),
            ));
        }
        Ok(())
    }

    pub fn check_streams(&self, streams: usize) -> Result<(), Refusal> {
        if streams > self.max_streams as usize {
            return Err(Refusal::too_large(
                "max_streams",
                streams,
                self.max_streams,
                &format!("the file has {streams} video and audio streams"),
            ));
        }
        Ok(())
    }

    pub fn check_duration(&self, duration: Duration) -> Result<(), Refusal> {
        let secs = duration.as_secs_f64();
        if secs > self.max_duration_secs as f64 {
            return Err(Refusal::too_large(
                "max_duration_secs",
                format!("{secs:.0}"),
                self.max_duration_secs,
                &format!("the file lasts {secs:.0} s"),
            ));
        }
        Ok(())
    }

    pub fn check_frames(&self, frames: u64) -> Result<(), Refusal> {
        if frames > self.max_frames {
            return Err(Refusal::too_large(
                "max_frames",
                frames,
                self.max_frames,
                &format!("a stream holds {frames} samples"),
            ));
        }
        Ok(())
    }

    /// Everything a container header says, checked at once; the first rule broken is reported.
    pub fn check_facts(&self, facts: &MediaFacts) -> Result<(), Refusal> {
        self.check_streams(facts.media_streams())?;
        if let Some(duration) = facts.duration {
            self.check_duration(duration)?;
        }
        for track in facts.tracks.iter().filter(|t| t.kind != TrackKind::Other) {
            if codecs::mp4_sample_entry(&fourcc(&track.codec)).is_none() {
                let what = if track.kind == TrackKind::Video { "video" } else { "audio" };
                let list = if track.kind == TrackKind::Video { codecs::VIDEO } else { codecs::AUDIO };
                return Err(Refusal::unsupported(
                    if track.kind == TrackKind::Video { "video_codecs" } else { "audio_codecs" },
                    &track.codec,
                    format!(
                        "the {what} codec `{}` is not accepted ({what}_codecs: {})",
                        track.codec.trim(),
                        list.join(", ")
                    ),
                ));
            }
            if let Some(duration) = track.duration {
                self.check_duration(duration)?;
            }
            self.check_frames(track.samples)?;
            if track.kind == TrackKind::Video && track.width > 0 && track.height > 0 {
                self.check_picture(track.width, track.height)?;
                if let Some(fps) = track.fps() {
                    self.check_rate(track.width, track.height, fps)?;
                }
            }
        }
        Ok(())
    }

    /// The wall-clock budget of a run that writes `output` of media at `pixel_rate` (unknown:
    /// the reference rate).
    pub fn timeout(&self, output: Duration, pixel_rate: Option<f64>) -> Duration {
        let scale = pixel_rate.map_or(1.0, |r| (r / REFERENCE_PIXEL_RATE).max(1.0));
        let work = output.as_secs_f64() * scale;
        Duration::from_secs(self.timeout_base_secs as u64)
            + Duration::from_secs_f64(work * self.timeout_secs_per_output_sec as f64)
    }
}

fn fourcc(text: &str) -> [u8; 4] {
    let mut out = [b' '; 4];
    for (slot, byte) in out.iter_mut().zip(text.bytes()) {
        *slot = byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Container, RefusalKind, Track};

    fn video(width: u32, height: u32, fps: u32, secs: u64) -> Track {
        Track {
            kind: TrackKind::Video,
            codec: "hvc1".into(),
            width,
            height,
            samples: fps as u64 * secs,
            duration: Some(Duration::from_secs(secs)),
        }
    }

    fn facts(tracks: Vec<Track>) -> MediaFacts {
        MediaFacts { container: Container::Mp4, duration: Some(Duration::from_secs(10)), tracks }
    }

    #[test]
    fn phone_clips_pass_in_both_orientations() {
        let limits = InputLimits::default();
        for (w, h, fps) in [(3840, 2160, 60), (2160, 3840, 60), (1920, 1080, 240), (1080, 1920, 30)] {
            assert_eq!(limits.check_facts(&facts(vec![video(w, h, fps, 10)])), Ok(()), "{w}×{h}@{fps}");
        }
    }

    #[test]
    fn each_limit_names_itself_and_the_value_found() {
        let limits = InputLimits::default();
        let refusal = |t: Track| limits.check_facts(&facts(vec![t])).unwrap_err();
        let r = refusal(video(7680, 4320, 30, 10));
        assert_eq!((r.kind, r.limit, r.found.as_str()), (RefusalKind::TooLarge, "max_width", "7680"));
        assert!(r.message.contains("7680×4320") && r.message.contains("max_width = 4096"), "{}", r.message);
        assert_eq!(refusal(video(1, 1, 1000, 10)).limit, "max_fps");
        assert_eq!(refusal(video(4096, 2160, 120, 10)).limit, "max_pixel_rate");
        assert_eq!(refusal(video(4096, 4096, 30, 10)).limit, "max_pixels");
        let mut huge = video(640, 360, 30, 10);
        huge.samples = 1_000_000_000;
        huge.duration = None;
        assert_eq!(refusal(huge).found, "1000000000");
        let mut prores = video(1920, 1080, 30, 10);
        prores.codec = "apcn".into();
        let r = refusal(prores);
        assert_eq!((r.kind, r.limit), (RefusalKind::Unsupported, "video_codecs"));
    }

    #[test]
    fn stream_count_and_duration_are_limited() {
        let limits = InputLimits::default();
        let audio =
            Track { kind: TrackKind::Audio, codec: "mp4a".into(), width: 0, height: 0, samples: 100, duration: None };
        let mut tracks = vec![video(640, 360, 30, 10)];
        tracks.extend(std::iter::repeat_n(audio, 16));
        assert_eq!(limits.check_facts(&facts(tracks)).unwrap_err().found, "17");
        let mut long = facts(vec![]);
        long.duration = Some(Duration::from_secs(7200));
        assert_eq!(limits.check_facts(&long).unwrap_err().limit, "max_duration_secs");
    }

    #[test]
    fn the_time_budget_grows_with_the_work() {
        let limits = InputLimits::default();
        let thirty = Duration::from_secs(30);
        assert_eq!(limits.timeout(thirty, None), Duration::from_secs(60 + 120));
        assert_eq!(
            limits.timeout(thirty, Some(640.0 * 360.0 * 30.0)),
            Duration::from_secs(180),
            "small is not cheaper than the reference"
        );
        assert_eq!(limits.timeout(thirty, Some(3840.0 * 2160.0 * 60.0)), Duration::from_secs(60 + 120 * 8));
    }

    #[test]
    fn limits_read_from_toml_with_defaults_and_no_unknown_fields() {
        let l: InputLimits = toml::from_str("max_width = 1920").unwrap();
        assert_eq!((l.max_width, l.max_height), (1920, 4096));
        assert!(toml::from_str::<InputLimits>("max_widht = 1").is_err());
    }
}
