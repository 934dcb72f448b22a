//! What a backend failure came from.

use std::error::Error;
use std::fmt;

/// The text of a failure and, when there is one, the error it came from (an `io::Error`, a
/// `sqlx::Error`, an AWS SDK error), kept as its `source()` so that a log or a caller can reach
/// the library's own error; the text stays one readable line.
#[derive(Debug)]
pub struct Cause {
    text: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl Cause {
    /// The error's own text, the error kept as the source.
    pub fn of(error: impl Error + Send + Sync + 'static) -> Self {
        Cause { text: error.to_string(), source: Some(Box::new(error)) }
    }

    /// A text of ours (fuller than the error's own, or with context), the error kept as the source.
    pub fn described(text: impl Into<String>, error: impl Error + Send + Sync + 'static) -> Self {
        Cause { text: text.into(), source: Some(Box::new(error)) }
    }
}

/// A failure with no error behind it (a timeout of ours, an injected fault).
impl From<String> for Cause {
    fn from(text: String) -> Self {
        Cause { text, source: None }
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Self {
        Cause::from(text.to_owned())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_the_error_behind_it() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry");
        let cause = Cause::described("writing blobs/a", io);
        assert_eq!(cause.to_string(), "writing blobs/a");
        let source = cause.source().expect("the io error is kept");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        assert!(Cause::from("timed out").source().is_none());
        assert_eq!(Cause::of(std::fmt::Error).to_string(), std::fmt::Error.to_string());
    }
}
