//! Typed errors with stable codes.
//!
//! Every failure of a run maps to one [`ErrorCode`]. The code is part of the public contract (it
//! is stored with a failed video and returned by the API), so codes never change once shipped.

use std::fmt;

pub use anb_codes::ErrorCode;

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
    /// debug string (element paths and source locations) for the logs, and `source` the
    /// GStreamer error it came from, if it came from one.
    #[error("{code}: {message}")]
    Run {
        code: ErrorCode,
        message: String,
        element: Option<String>,
        debug: Option<String>,
        #[source]
        source: Option<gst::glib::Error>,
    },
}

impl PipelineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PipelineError::Run { code, message: message.into(), element: None, debug: None, source: None }
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
