//! Typed errors with stable codes.
//!
//! Every failure of a run maps to one [`ErrorCode`]. The code is part of the public contract (it
//! is stored with a failed video and returned by the API), so codes never change once shipped.

use std::fmt;

/// Stable, kebab-case error codes. Whose fault an error is decides whether a job is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input is not a decodable video: unknown container, no video stream, truncated, corrupt.
    InvalidInput,
    /// The input is a video, but in a container or codec off the allow-list, or one this
    /// installation cannot decode.
    UnsupportedInput,
    /// The input asks more than a media limit allows (picture size, frame or pixel rate,
    /// streams, duration, samples); the message names the limit and the value found.
    InputTooLarge,
    /// The run went past its wall-clock budget (the limits' `timeout_*`).
    JobTimeout,
    /// The pipeline made no progress for the stall timeout.
    PipelineStalled,
    /// Reading the input failed (storage error, not a property of the bytes).
    SourceFailed,
    /// Writing the output failed.
    SinkFailed,
    /// `pipeline.toml` is invalid.
    InvalidPipeline,
    /// The run was cancelled by its owner (shutdown, lost lease).
    Cancelled,
    /// Anything else: a bug or a broken installation.
    Internal,
}

impl ErrorCode {
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
        }
    }

    /// Whether the uploader (rather than the platform) is at fault: the one meaning of
    /// "permanent" (a job failing so is never retried). A run over its time budget is: the
    /// budget grows with the work the file asks for, at many times the measured speed. An
    /// invalid `pipeline.toml` is not: a deploy fixes it, and the job is retried then.
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

/// One problem in a `pipeline.toml`, located by stage index, stage type and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Index of the stage in the file (0-based), `None` for file-level problems.
    pub stage: Option<usize>,
    /// The stage's `type`, when known.
    pub stage_type: Option<String>,
    /// The field the problem is about, when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem with one field of a stage; the loader fills in the stage's index and type.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Problem { stage: None, stage_type: None, field: Some(field.to_owned()), message: message.into() }
    }

    /// A problem with the file as a whole.
    pub fn file(message: impl Into<String>) -> Self {
        Problem { stage: None, stage_type: None, field: None, message: message.into() }
    }

    /// A problem when `value` lies outside `range` ("9 is not valid: use 1 to 4"), else `None`.
    pub fn out_of_range<T: PartialOrd + fmt::Display>(
        field: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Option<Self> {
        (!range.contains(&value))
            .then(|| Problem::field(field, format!("{value} is not valid: use {} to {}", range.start(), range.end())))
    }

    pub(crate) fn at(mut self, index: usize, stage_type: &str) -> Self {
        self.stage = Some(index);
        self.stage_type = Some(stage_type.to_owned());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.stage, &self.stage_type) {
            (Some(i), Some(t)) => write!(f, "stage {i} (`{t}`)")?,
            (Some(i), None) => write!(f, "stage {i}")?,
            _ => write!(f, "pipeline")?,
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a pipeline file, reported at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{}: {n} problem{}", self.source_name, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid pipeline: {0}")]
    Config(#[from] ConfigError),
    /// A failure with a stable code and a message fit for the uploader; `debug` holds GStreamer's
    /// debug string (element paths and source locations) for the logs.
    #[error("{code}: {message}")]
    Run { code: ErrorCode, message: String, element: Option<String>, debug: Option<String> },
}

impl PipelineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PipelineError::Run { code, message: message.into(), element: None, debug: None }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            PipelineError::Config(_) => ErrorCode::InvalidPipeline,
            PipelineError::Run { code, .. } => *code,
        }
    }

    /// A short human message (no debug details).
    pub fn message(&self) -> String {
        match self {
            PipelineError::Config(c) => c.to_string(),
            PipelineError::Run { message, .. } => message.clone(),
        }
    }
}

impl From<anb_media::Refusal> for PipelineError {
    fn from(refusal: anb_media::Refusal) -> Self {
        let code = match refusal.kind {
            anb_media::RefusalKind::TooLarge => ErrorCode::InputTooLarge,
            anb_media::RefusalKind::Unsupported => ErrorCode::UnsupportedInput,
            anb_media::RefusalKind::Invalid => ErrorCode::InvalidInput,
        };
        PipelineError::new(code, refusal.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_classified() {
        assert_eq!(ErrorCode::InvalidInput.as_str(), "invalid-input");
        assert_eq!(ErrorCode::PipelineStalled.to_string(), "pipeline-stalled");
        assert!(ErrorCode::InvalidInput.is_client_fault());
        assert!(!ErrorCode::SourceFailed.is_client_fault());
        assert!(!ErrorCode::PipelineStalled.is_client_fault());
        assert!(!ErrorCode::InvalidPipeline.is_client_fault(), "fixed by a deploy, then retried");
        assert_eq!(ErrorCode::InputTooLarge.as_str(), "input-too-large");
        assert_eq!(ErrorCode::JobTimeout.as_str(), "job-timeout");
        for code in [ErrorCode::InputTooLarge, ErrorCode::JobTimeout] {
            assert!(code.is_client_fault(), "{code} is never retried");
        }
    }

    #[test]
    fn range_problems_say_what_is_valid() {
        assert_eq!(Problem::out_of_range("crf", 60, 0..=51).unwrap().message, "60 is not valid: use 0 to 51");
        assert!(Problem::out_of_range("crf", 51, 0..=51).is_none());
    }

    #[test]
    fn problems_name_stage_type_and_field() {
        let p = Problem::field("crf", "must be between 0 and 51").at(3, "encode");
        assert_eq!(p.to_string(), "stage 3 (`encode`), field `crf`: must be between 0 and 51");
    }
}
