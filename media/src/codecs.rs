//! The codec allow-list: the decoders a file may reach.
//!
//! Checked twice: by MP4 sample entry before the graph exists ([`mp4_sample_entry`]), and by
//! caps name while decodebin plugs elements ([`classify_caps`]), so a Matroska file, or an MP4
//! whose header hides a stream from [`crate::mp4`], still never reaches another decoder.

/// Accepted video codecs (published to clients).
pub const VIDEO: &[&str] = &["h264", "hevc", "vp8", "vp9", "av1"];
/// Accepted audio codecs (published to clients).
pub const AUDIO: &[&str] = &["aac", "mp3", "opus", "vorbis", "pcm"];

/// The codec of an MP4/MOV sample entry, when it is accepted.
pub fn mp4_sample_entry(fourcc: &[u8; 4]) -> Option<&'static str> {
    Some(match fourcc {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"av01" => "av1",
        // `mp4a` carries AAC or MP3 (by object type); the caps check tells them apart.
        b"mp4a" => "aac",
        b".mp3" => "mp3",
        b"Opus" => "opus",
        b"lpcm" | b"sowt" | b"twos" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"raw " | b"ipcm" => "pcm",
        _ => return None,
    })
}

/// What decodebin may do with a stream of these caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapsVerdict {
    /// An accepted container, codec, or raw media: plug on.
    Plug,
    /// A picture codec off the list (or an image stream): refuse the file.
    RefuseVideo,
    /// A sound codec off the list: refuse the file.
    RefuseAudio,
    /// Subtitles, metadata, anything else: never decoded, left unused.
    Leave,
}

/// Classify a GStreamer caps structure name (`video/x-h264`, `application/x-hls`).
pub fn classify_caps(name: &str) -> CapsVerdict {
    const PLUG: &[&str] = &[
        // containers
        "video/quicktime",
        "video/x-matroska",
        "video/x-matroska-3d",
        "video/webm",
        "audio/webm",
        "audio/x-matroska",
        // codecs
        "video/x-h264",
        "video/x-h265",
        "video/x-vp8",
        "video/x-vp9",
        "video/x-av1",
        "audio/mpeg",
        "audio/x-opus",
        "audio/x-vorbis",
        // decoded
        "video/x-raw",
        "audio/x-raw",
    ];
    if PLUG.contains(&name) {
        CapsVerdict::Plug
    } else if name.starts_with("video/") || name.starts_with("image/") {
        CapsVerdict::RefuseVideo
    } else if name.starts_with("audio/") {
        CapsVerdict::RefuseAudio
    } else {
        CapsVerdict::Leave
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_entries_map_to_the_published_names() {
        for (entry, codec) in
            [(b"avc1", "h264"), (b"hvc1", "hevc"), (b"av01", "av1"), (b"mp4a", "aac"), (b"sowt", "pcm")]
        {
            let name = mp4_sample_entry(entry).unwrap();
            assert_eq!(name, codec);
            assert!(VIDEO.contains(&name) || AUDIO.contains(&name));
        }
        assert_eq!(mp4_sample_entry(b"apcn"), None, "ProRes is not accepted");
        assert_eq!(mp4_sample_entry(b"jpeg"), None);
    }

    #[test]
    fn caps_are_plugged_refused_or_left() {
        assert_eq!(classify_caps("video/x-h265"), CapsVerdict::Plug);
        assert_eq!(classify_caps("video/quicktime"), CapsVerdict::Plug);
        assert_eq!(classify_caps("video/x-prores"), CapsVerdict::RefuseVideo);
        assert_eq!(classify_caps("image/jpeg"), CapsVerdict::RefuseVideo);
        assert_eq!(classify_caps("audio/x-ac3"), CapsVerdict::RefuseAudio);
        assert_eq!(classify_caps("application/x-hls"), CapsVerdict::Leave);
        assert_eq!(classify_caps("text/x-raw"), CapsVerdict::Leave);
        assert_eq!(classify_caps("application/x-subtitle-vtt"), CapsVerdict::Leave);
    }
}
