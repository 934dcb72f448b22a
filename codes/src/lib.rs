//! anb-codes: every stable error code ANB Video can emit, in one list (as pict-rs's
//! `error_code.rs`). The pipeline, storage, queue, database, worker and CLI all speak it; a code
//! is stored with a failed video and returned by the API, so a code never changes once shipped.
//!
//! It is a crate of its own, with no dependencies, because every other crate needs it and the
//! dependency direction allows no other common home: `anb-pipeline` (GStreamer) and `anb-core`
//! (SQL, S3, SQS) must not know each other. `anb-core` re-exports it as `anb_core::ErrorCode`.

use std::fmt;
use std::str::FromStr;

/// A stable, kebab-case error code. [`ErrorCode::is_client_fault`] is the one meaning of
/// "permanent": a job failing with such a code is never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // The file's: never retried.
    /// The input is not a decodable video: unknown container, no video stream, truncated, corrupt.
    InvalidInput,
    /// A video in a container or codec off the allow-list, or one this installation cannot decode.
    UnsupportedInput,
    /// The input asks more than a media limit allows; the message names the limit and the value.
    InputTooLarge,
    /// The run went past its wall-clock budget, which grows with the work the file asks for.
    JobTimeout,

    // The run's: retried.
    /// The pipeline made no progress for the stall timeout.
    PipelineStalled,
    /// Reading the input failed (storage, not the bytes).
    SourceFailed,
    /// Writing the output failed.
    SinkFailed,
    /// `pipeline.toml` is invalid: a deploy fixes it, and the job is retried then.
    InvalidPipeline,
    /// The run was cancelled by its owner (shutdown, lost lease).
    Cancelled,
    /// Anything else: a bug or a broken installation.
    Internal,

    // Blob storage.
    /// No such object.
    NotFound,
    /// A key that cannot name an object.
    InvalidKey,
    /// An upload's body ended early.
    UploadInterrupted,
    /// Storage did not answer in time.
    StorageUnavailable,
    /// Storage refused the request.
    StorageRejected,
    /// A create-only write found an object there.
    AlreadyExists,

    // The job queue.
    /// The message's lease (receipt) is no longer ours.
    LeaseLost,
    /// The queue did not answer in time.
    QueueUnavailable,
    /// The queue refused the request.
    QueueError,

    // The database.
    /// A write conflicts with what is stored (a unique key, a reference).
    Conflict,
    /// The database did not answer in time.
    DatabaseUnavailable,
    /// The database refused the request.
    DatabaseError,

    // The worker.
    /// Earlier attempts died without recording why (as a file that exhausts memory makes them).
    WorkerLost,
    /// The worker stopped before the job's end; another will retry it.
    WorkerShutdown,
}

impl ErrorCode {
    /// Every code, in the order above.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::InvalidInput,
        ErrorCode::UnsupportedInput,
        ErrorCode::InputTooLarge,
        ErrorCode::JobTimeout,
        ErrorCode::PipelineStalled,
        ErrorCode::SourceFailed,
        ErrorCode::SinkFailed,
        ErrorCode::InvalidPipeline,
        ErrorCode::Cancelled,
        ErrorCode::Internal,
        ErrorCode::NotFound,
        ErrorCode::InvalidKey,
        ErrorCode::UploadInterrupted,
        ErrorCode::StorageUnavailable,
        ErrorCode::StorageRejected,
        ErrorCode::AlreadyExists,
        ErrorCode::LeaseLost,
        ErrorCode::QueueUnavailable,
        ErrorCode::QueueError,
        ErrorCode::Conflict,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::DatabaseError,
        ErrorCode::WorkerLost,
        ErrorCode::WorkerShutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::UnsupportedInput => "unsupported-input",
            ErrorCode::InputTooLarge => "input-too-large",
            ErrorCode::JobTimeout => "job-timeout",
            ErrorCode::PipelineStalled => "pipeline-stalled",
            ErrorCode::SourceFailed => "source-failed",
            ErrorCode::SinkFailed => "sink-failed",
            ErrorCode::InvalidPipeline => "invalid-pipeline",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not-found",
            ErrorCode::InvalidKey => "invalid-key",
            ErrorCode::UploadInterrupted => "upload-interrupted",
            ErrorCode::StorageUnavailable => "storage-unavailable",
            ErrorCode::StorageRejected => "storage-rejected",
            ErrorCode::AlreadyExists => "already-exists",
            ErrorCode::LeaseLost => "lease-lost",
            ErrorCode::QueueUnavailable => "queue-unavailable",
            ErrorCode::QueueError => "queue-error",
            ErrorCode::Conflict => "conflict",
            ErrorCode::DatabaseUnavailable => "database-unavailable",
            ErrorCode::DatabaseError => "database-error",
            ErrorCode::WorkerLost => "worker-lost",
            ErrorCode::WorkerShutdown => "worker-shutdown",
        }
    }

    /// Whether the uploader, not the platform, is at fault: the file is not a usable video or
    /// asks more than the limits allow. Such a job fails at once and is never retried; every
    /// other code is retried within the job's budget.
    pub fn is_client_fault(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidInput | ErrorCode::UnsupportedInput | ErrorCode::InputTooLarge | ErrorCode::JobTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code's text that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode(pub String);

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error code `{}`", self.0)
    }
}

impl std::error::Error for UnknownCode {}

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(text: &str) -> Result<Self, UnknownCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == text).ok_or_else(|| UnknownCode(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_kebab_case_unique_and_reads_back() {
        let texts: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts.len(), ErrorCode::ALL.len(), "no two codes share a text");
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{text}");
            assert_eq!(text.parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), text);
        }
        assert!("Invalid-Input".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn only_the_files_faults_are_never_retried() {
        let never: Vec<_> = ErrorCode::ALL.into_iter().filter(|c| c.is_client_fault()).collect();
        assert_eq!(
            never,
            [ErrorCode::InvalidInput, ErrorCode::UnsupportedInput, ErrorCode::InputTooLarge, ErrorCode::JobTimeout]
        );
        assert!(!ErrorCode::InvalidPipeline.is_client_fault(), "fixed by a deploy, then retried");
    }
}
