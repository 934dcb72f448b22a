//! What the first bytes of an upload really are, whatever the client's Content-Type says.

/// Bytes needed to recognise every container below (MPEG-TS needs two packets).
pub const SNIFF_LEN: usize = 376;

/// The container of a video file from its first bytes, as a file extension; `None` when the
/// bytes are not a video container this platform accepts.
pub fn video_container(head: &[u8]) -> Option<&'static str> {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        // ISO base media: MP4, MOV (brand `qt  `), 3GP. Not still images (HEIF/AVIF brands).
        let brand = &head[8..12];
        return match brand {
            b"qt  " => Some("mov"),
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis" => None,
            b if b.starts_with(b"3g") => Some("3gp"),
            _ => Some("mp4"),
        };
    }
    if head.len() >= 8 && (&head[4..8] == b"moov" || &head[4..8] == b"mdat" || &head[4..8] == b"wide") {
        return Some("mov"); // old QuickTime without ftyp
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let webm = head.windows(4).any(|w| w == b"webm");
        return Some(if webm { "webm" } else { "mkv" });
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"AVI " {
        return Some("avi");
    }
    if head.len() >= 189 && head[0] == 0x47 && head[188] == 0x47 {
        return Some("ts");
    }
    if head.starts_with(&[0x00, 0x00, 0x01, 0xBA]) {
        return Some("mpg");
    }
    if head.starts_with(b"FLV\x01") {
        return Some("flv");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_and_other_files_are_not() {
        let mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
        assert_eq!(video_container(mp4), Some("mp4"));
        assert_eq!(video_container(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "), Some("mov"));
        assert_eq!(video_container(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), None, "a photo");
        assert_eq!(video_container(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm']), Some("webm"));
        let mut ts = vec![0u8; 376];
        ts[0] = 0x47;
        ts[188] = 0x47;
        assert_eq!(video_container(&ts), Some("ts"));
        assert_eq!(video_container(b"RIFF\0\0\0\0AVI LIST"), Some("avi"));
        for other in [&b"hello, this is a text file renamed to .mp4"[..], b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"", b"%PDF-1.7"] {
            assert_eq!(video_container(other), None);
        }
    }
}
