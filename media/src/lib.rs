//! anb-media: what input ANB Video admits, decided from headers before anything is decoded.
//!
//! - [`container`]: the container allow-list (MP4/MOV/3GP, Matroska/WebM), from the first bytes;
//! - [`codecs`]: the codec allow-list, by MP4 sample entry and by GStreamer caps name;
//! - [`limits`]: [`InputLimits`] (size, rate, streams, duration, frames, time) and the checks;
//! - [`mp4`]: a bounded reader of an MP4/MOV `moov` box that yields [`MediaFacts`] without
//!   reading the media data or the sample tables.
//!
//! Every refusal is a [`Refusal`]: a permanent, client-visible kind, the limit it hit (named as
//! in `pipeline.toml` and `GET /api/upload-limits`) and the value the file has.

pub mod codecs;
pub mod container;
pub mod limits;
pub mod mp4;

use std::fmt;
use std::time::Duration;

pub use container::{sniff, Container, Sniffed};
pub use limits::InputLimits;

/// Whose rule an input broke. Each maps to one stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Bigger or faster than a limit allows: `input-too-large`.
    TooLarge,
    /// A container or codec off the allow-list: `unsupported-input`.
    Unsupported,
    /// Not a video at all: `invalid-input`.
    Invalid,
}

/// A permanent refusal of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// The limit or list that refused it (`max_width`, `containers`, ...).
    pub limit: &'static str,
    /// What the file has, as text (`7680`, `application/x-hls`, ...).
    pub found: String,
    /// A sentence for the uploader, naming the limit and the value.
    pub message: String,
}

impl Refusal {
    /// `what` (e.g. "the picture is 7680 pixels wide") over `limit` = `allowed`.
    pub fn too_large(limit: &'static str, found: impl fmt::Display, allowed: impl fmt::Display, what: &str) -> Self {
        Refusal {
            kind: RefusalKind::TooLarge,
            limit,
            found: found.to_string(),
            message: format!("{what}: more than the limit {limit} = {allowed}"),
        }
    }

    pub fn unsupported(limit: &'static str, found: impl fmt::Display, message: String) -> Self {
        Refusal { kind: RefusalKind::Unsupported, limit, found: found.to_string(), message }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a stream is, as far as the limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    /// Timecode, metadata, subtitles, hints: never decoded, only counted against the box budget.
    Other,
}

/// One track as its header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub kind: TrackKind,
    /// The sample entry's four characters (`avc1`, `hvc1`, `mp4a`), as text.
    pub codec: String,
    /// The coded picture size of a video track (0 when the header has none).
    pub width: u32,
    pub height: u32,
    /// Samples (frames of video, packets of audio) the sample table claims.
    pub samples: u64,
    pub duration: Option<Duration>,
}

impl Track {
    /// Mean frames per second over the track, when it has a duration.
    pub fn fps(&self) -> Option<f64> {
        let secs = self.duration?.as_secs_f64();
        (secs > 0.0 && self.samples > 0).then(|| self.samples as f64 / secs)
    }
}

/// What a container's header says about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFacts {
    pub container: Container,
    /// The movie's duration, when the header gives one.
    pub duration: Option<Duration>,
    pub tracks: Vec<Track>,
}

impl MediaFacts {
    /// The first video track.
    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Video)
    }

    /// Video and audio tracks: the streams a decoder would see.
    pub fn media_streams(&self) -> usize {
        self.tracks.iter().filter(|t| t.kind != TrackKind::Other).count()
    }
}
