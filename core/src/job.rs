//! The job contract between the web tier and the workers: the message the queue carries and
//! the blob keys of a video's files. Both sides build them here, so they cannot drift apart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::blob::BlobKey;

/// What a queued message says: "look at this video". The video's row holds everything else
/// (its upload's key, its status, its attempts), so a late or duplicate message is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub video_id: Uuid,
}

impl JobMessage {
    pub fn new(video_id: Uuid) -> Self {
        JobMessage { video_id }
    }

    /// The message's body on the queue: `{"video_id":"..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "video_id": self.video_id }).to_string()
    }

    /// The message a body holds, or `None` when it is not one (the worker drops it).
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }
}

/// Where an upload is kept: `uploads/{video}.{extension}`. The extension is the container the
/// bytes were found to be, or one of a fixed list (never the client's text as given).
pub fn upload_key(video_id: Uuid, extension: &'static str) -> BlobKey {
    BlobKey::built(format!("uploads/{video_id}.{extension}"))
}

/// The processed output of one attempt: `processed/{video}-{attempt}.mp4`. An attempt never
/// overwrites another's output, and the video's row points at an output only once the
/// completion is recorded; an attempt whose completion is not recorded removes its own.
pub fn processed_key(video_id: Uuid, attempt: i32) -> BlobKey {
    BlobKey::built(format!("processed/{video_id}-{attempt}.mp4"))
}

/// The poster of one attempt, beside its output: `posters/{video}-{attempt}.jpg`.
pub fn poster_key(video_id: Uuid, attempt: i32) -> BlobKey {
    BlobKey::built(format!("posters/{video_id}-{attempt}.jpg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_video_id_alone_and_reads_back() {
        let id = Uuid::parse_str("6f1c1a52-51a4-4d3a-9c1e-0c5d7f0e2b11").unwrap();
        let body = JobMessage::new(id).body();
        assert_eq!(body, r#"{"video_id":"6f1c1a52-51a4-4d3a-9c1e-0c5d7f0e2b11"}"#);
        assert_eq!(JobMessage::parse(&body), Some(JobMessage::new(id)));
        // Fields a newer sender may add are ignored; anything else is not a job.
        assert_eq!(JobMessage::parse(&format!(r#"{{"video_id":"{id}","extra":1}}"#)), Some(JobMessage::new(id)));
        for junk in ["", "{}", r#"{"video_id":"nope"}"#, "[1]"] {
            assert_eq!(JobMessage::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn keys_are_valid_and_per_attempt() {
        let id = Uuid::nil();
        for key in [upload_key(id, "mp4"), processed_key(id, 2), poster_key(id, 2)] {
            assert!(BlobKey::new(key.as_str()).is_ok(), "{key}");
        }
        assert_eq!(processed_key(id, 2).as_str(), format!("processed/{id}-2.mp4"));
        assert_eq!(poster_key(id, 2).as_str(), format!("posters/{id}-2.jpg"));
        assert_ne!(processed_key(id, 1), processed_key(id, 2));
        assert_eq!(poster_key(id, 1).content_type(), "image/jpeg");
    }
}
