//! Blob storage: one small trait, a local-folder backend and an S3 backend.
//!
//! Objects are written by streaming a body of unknown length and become visible only when
//! complete; they are read with random access (size + read at offset), which is what the
//! pipeline's byte source needs; they are served to clients through expiring URLs.

mod cache;
mod folder;
mod presign;
mod s3;

use crate::{Cause, ErrorCode};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::stream::BoxStream;

pub use cache::{CacheConfig, CachedReader, RangeFetch};
pub use folder::FolderStore;
pub use presign::UrlSigner;
pub use s3::{S3Options, S3Store};

/// A key inside a store, like `uploads/0b6c….mp4`: relative, `/`-separated, no `.` or `..`
/// segments, so a key can never name something outside the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// The MIME type its extension names: S3 stores it with the object and the folder backend's
    /// file route answers with it, so a browser plays the video and shows the poster (links are
    /// served with `nosniff`).
    pub fn content_type(&self) -> &'static str {
        match self.0.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
            Some("mp4") => "video/mp4",
            Some("mov") => "video/quicktime",
            Some("webm") => "video/webm",
            Some("mkv") => "video/x-matroska",
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("png") => "image/png",
            Some("webp") => "image/webp",
            _ => "application/octet-stream",
        }
    }

    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let valid = !key.is_empty()
            && key.len() <= 1024
            && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'))
            && !key.chars().any(char::is_control);
        if valid {
            Ok(BlobKey(key))
        } else {
            Err(StorageError::InvalidKey(key))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key this crate builds from parts that cannot make it invalid (a UUID, an attempt
    /// number, fixed words and extensions): see [`crate::job`].
    pub(crate) fn built(key: String) -> Self {
        debug_assert!(BlobKey::new(key.as_str()).is_ok(), "{key}");
        BlobKey(key)
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Storage failures with stable codes. `Unavailable` is transient: retry later.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no object `{0}`")]
    NotFound(BlobKey),
    #[error("`{0}` is not a valid object key")]
    InvalidKey(String),
    /// The body stream itself failed (a client went away mid-upload).
    #[error("the upload stream failed: {0}")]
    Body(#[source] io::Error),
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The service refused the request (access denied, no such bucket): retrying will not help.
    #[error("storage refused the request: {0}")]
    Rejected(#[source] Cause),
    /// A write that may only create found an object already there.
    #[error("`{0}` already exists")]
    AlreadyExists(BlobKey),
}

impl StorageError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::NotFound(_) => ErrorCode::NotFound,
            StorageError::InvalidKey(_) => ErrorCode::InvalidKey,
            StorageError::Body(_) => ErrorCode::UploadInterrupted,
            StorageError::Unavailable(_) => ErrorCode::StorageUnavailable,
            StorageError::Rejected(_) => ErrorCode::StorageRejected,
            StorageError::AlreadyExists(_) => ErrorCode::AlreadyExists,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

/// A byte stream of unknown length.
pub type Body = BoxStream<'static, io::Result<Bytes>>;

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Store `body` under `key`, replacing any object there. The object appears only when the
    /// whole body is stored; on error (or if the future is dropped) nothing is left behind.
    /// Returns the bytes stored.
    async fn put_stream(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError>;

    /// As [`BlobStore::put_stream`], but only if no object is under `key`: of two writes, the
    /// first to complete wins and the other gets `AlreadyExists` (and leaves nothing behind). A
    /// one-shot upload link writes this way, so a confirmed upload is never replaced.
    async fn put_stream_new(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError>;

    /// Random access to a stored object.
    async fn open(&self, key: &BlobKey) -> Result<Arc<dyn BlobReader>, StorageError>;

    /// Remove an object; removing a missing object is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError>;

    async fn exists(&self, key: &BlobKey) -> Result<bool, StorageError>;

    /// A URL that downloads the object with a plain HTTP GET until `expires_in` has passed.
    async fn presign_get(&self, key: &BlobKey, expires_in: Duration) -> Result<String, StorageError>;

    /// A URL that stores exactly `size` bytes under `key` with one HTTP PUT until `expires_in`
    /// has passed, and only while no object is there (S3 answers 412 otherwise, the folder
    /// backend's link 409): a client uploads a large file straight to storage, past the web tier.
    async fn presign_put(&self, key: &BlobKey, size: u64, expires_in: Duration) -> Result<PresignedPut, StorageError>;
}

/// A presigned upload: `PUT` the bytes to `url` with these headers (they are part of the
/// signature, so a client must send them unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// Random-access reads of one object.
#[async_trait::async_trait]
pub trait BlobReader: Send + Sync {
    fn size(&self) -> u64;
    /// Bytes fetched from the backend so far (with block rounding and read-ahead, which may
    /// exceed what was asked for): what the storage bill and the network see.
    fn bytes_fetched(&self) -> u64;
    /// Up to `len` bytes at `offset`; fewer only at the end of the object.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StorageError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_types_follow_the_extension() {
        let of = |k: &str| super::BlobKey::new(k).unwrap().content_type();
        assert_eq!(of("processed/a-1.mp4"), "video/mp4");
        assert_eq!(of("posters/a-1.jpg"), "image/jpeg");
        assert_eq!(of("uploads/a.MOV"), "video/quicktime");
        assert_eq!(of("uploads/a"), "application/octet-stream");
    }

    use super::*;

    #[test]
    fn keys_cannot_escape_the_store() {
        assert!(BlobKey::new("uploads/abc.mp4").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\\\b", "a\\nb"] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
