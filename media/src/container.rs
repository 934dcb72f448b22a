//! The container allow-list, decided from a file's first bytes.
//!
//! Only ISO base media (MP4, MOV, 3GP) and Matroska (MKV, WebM) go to a demuxer. Everything
//! else is refused before GStreamer sees it, so typefinding can never hand a file to a playlist
//! reader (HLS, DASH: they fetch URLs), an image decoder or a subtitle parser.

/// Bytes [`sniff`] needs to recognise every container it names (MPEG-TS needs two packets).
pub const SNIFF_LEN: usize = 376;

/// An accepted container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    QuickTime,
    ThreeGp,
    Matroska,
    WebM,
}

/// The accepted containers, by file extension (published to clients).
pub const ACCEPTED: &[&str] = &["mp4", "mov", "3gp", "mkv", "webm"];

impl Container {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::QuickTime => "mov",
            Container::ThreeGp => "3gp",
            Container::Matroska => "mkv",
            Container::WebM => "webm",
        }
    }

    /// ISO base media (read by [`crate::mp4`]) rather than Matroska.
    pub fn is_iso_media(self) -> bool {
        matches!(self, Container::Mp4 | Container::QuickTime | Container::ThreeGp)
    }
}

/// What the first bytes of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Accepted(Container),
    /// A known format that is not accepted, named for the uploader.
    Refused(&'static str),
    /// Not a format this platform knows: not a video.
    Unknown,
}

/// Recognise a file from its first bytes (pass at least [`SNIFF_LEN`] when the file has them).
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"qt  " => Sniffed::Accepted(Container::QuickTime),
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis" => Sniffed::Refused("HEIF/AVIF image"),
            b if b.starts_with(b"3g") => Sniffed::Accepted(Container::ThreeGp),
            _ => Sniffed::Accepted(Container::Mp4),
        };
    }
    if head.len() >= 8 && matches!(&head[4..8], b"moov" | b"mdat" | b"wide") {
        return Sniffed::Accepted(Container::QuickTime); // old QuickTime without `ftyp`
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let webm = head.windows(4).any(|w| w == b"webm");
        return Sniffed::Accepted(if webm { Container::WebM } else { Container::Matroska });
    }
    Sniffed::Refused(match () {
        _ if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"AVI " => "AVI",
        _ if head.len() >= 189 && head[0] == 0x47 && head[188] == 0x47 => "MPEG transport stream",
        _ if head.starts_with(&[0x00, 0x00, 0x01, 0xBA]) => "MPEG program stream",
        _ if head.starts_with(b"FLV\x01") => "Flash video",
        _ if head.starts_with(b"OggS") => "Ogg",
        _ if skip_bom(head).starts_with(b"#EXTM3U") => "HLS playlist",
        _ if skip_bom(head).starts_with(b"<?xml") && head.windows(4).any(|w| w == b"<MPD") => "DASH manifest",
        _ if head.starts_with(b"\x89PNG") => "PNG image",
        _ if head.starts_with(&[0xFF, 0xD8, 0xFF]) => "JPEG image",
        _ if head.starts_with(b"GIF8") => "GIF image",
        _ if head.starts_with(b"WEBVTT") => "WebVTT subtitles",
        _ => return Sniffed::Unknown,
    })
}

fn skip_bom(head: &[u8]) -> &[u8] {
    head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_containers_are_recognised() {
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41"), Sniffed::Accepted(Container::Mp4));
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "), Sniffed::Accepted(Container::QuickTime));
        assert_eq!(sniff(b"\0\0\0\x14ftyp3gp4\0\0\0\0"), Sniffed::Accepted(Container::ThreeGp));
        assert_eq!(sniff(b"\0\0\x10\0moov\0\0\0\x6cmvhd"), Sniffed::Accepted(Container::QuickTime));
        let webm = [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm'];
        assert_eq!(sniff(&webm), Sniffed::Accepted(Container::WebM));
        assert_eq!(sniff(&webm[..4]), Sniffed::Accepted(Container::Matroska));
    }

    #[test]
    fn other_formats_are_named_and_refused() {
        let mut ts = vec![0u8; 376];
        ts[0] = 0x47;
        ts[188] = 0x47;
        assert_eq!(sniff(&ts), Sniffed::Refused("MPEG transport stream"));
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI LIST"), Sniffed::Refused("AVI"));
        assert_eq!(sniff(b"#EXTM3U\n#EXT-X-VERSION:3\n"), Sniffed::Refused("HLS playlist"));
        assert_eq!(sniff(b"\xEF\xBB\xBF#EXTM3U\n"), Sniffed::Refused("HLS playlist"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Sniffed::Refused("HEIF/AVIF image"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Sniffed::Refused("PNG image"));
    }

    #[test]
    fn anything_else_is_unknown() {
        for other in [&b"hello, this is a text file renamed to .mp4"[..], b"", b"%PDF-1.7", b"\0\0"] {
            assert_eq!(sniff(other), Sniffed::Unknown);
        }
    }
}
