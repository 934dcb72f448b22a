//! What the first bytes of an upload really are, whatever the client's Content-Type says: the
//! same container allow-list the workers apply (`anb_media::container`), checked at the door so
//! a file no worker would take is refused before it is stored.

use anb_media::Sniffed;

pub use anb_media::container::SNIFF_LEN;

use crate::error::ApiError;

/// The container of an upload as a file extension, or the 400 that refuses it.
pub fn video_container(head: &[u8]) -> Result<&'static str, ApiError> {
    match anb_media::sniff(head) {
        Sniffed::Accepted(container) => Ok(container.extension()),
        Sniffed::Refused(name) => Err(ApiError::bad_request(format!(
            "{name} files are not accepted: send one of {} (see GET /api/upload-limits)",
            anb_media::container::ACCEPTED.join(", ")
        ))),
        Sniffed::Unknown => Err(ApiError::bad_request("The file is not a video (unrecognised container)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_containers_give_their_extension_and_others_a_reason() {
        assert_eq!(video_container(b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41").ok(), Some("mp4"));
        assert_eq!(video_container(b"\0\0\0\x14ftypqt  \0\0\0\0qt  ").ok(), Some("mov"));
        let refused = format!("{:?}", video_container(b"#EXTM3U\n").unwrap_err());
        assert!(refused.contains("HLS playlist"), "{refused}");
        let unknown = format!("{:?}", video_container(b"just some notes").unwrap_err());
        assert!(unknown.contains("not a video"), "{unknown}");
    }
}
