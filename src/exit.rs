//! How a command ends. Each way out is a variant, and `main` alone turns it into the process's
//! exit status and prints it; commands never pick status numbers themselves.

use std::fmt;
use std::process::ExitCode;

/// Why a command stopped before its end.
#[derive(Debug)]
pub enum Exit {
    /// Invalid settings, pipeline file or arguments: every problem, named (status 2).
    Config(String),
    /// `anb process`: the input is not a usable video, or asks more than the limits allow (3).
    BadInput(String),
    /// Stopped by Ctrl-C or SIGTERM before the end (130, as shells report SIGINT).
    Cancelled(String),
    /// `anb process`: the run failed for a reason that is not the file's (storage, a bug) (1).
    RunFailed(String),
    /// Anything else (1).
    Failed(anyhow::Error),
}

/// What a command returns.
pub type Outcome = Result<(), Exit>;

impl Exit {
    pub fn status(&self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Config(_) => 2,
            Exit::BadInput(_) => 3,
            Exit::Cancelled(_) => 130,
            Exit::RunFailed(_) | Exit::Failed(_) => 1,
        })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Config(text) | Exit::BadInput(text) | Exit::Cancelled(text) | Exit::RunFailed(text) => {
                f.write_str(text.trim_end())
            }
            Exit::Failed(e) => write!(f, "error: {e:#}"),
        }
    }
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Self {
        Exit::Failed(e)
    }
}

impl From<std::io::Error> for Exit {
    fn from(e: std::io::Error) -> Self {
        Exit::Failed(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;
    use std::process::ExitCode;

    #[test]
    fn each_way_out_has_its_own_status() {
        let cases = [
            (Exit::Config("ANB_LISTEN: bad".into()), 2),
            (Exit::BadInput("error[invalid-input]: no video".into()), 3),
            (Exit::Cancelled("error[cancelled]: stopped".into()), 130),
            (Exit::RunFailed("error[sink-failed]: disk full".into()), 1),
            (Exit::Failed(anyhow::anyhow!("disk full")), 1),
        ];
        for (exit, status) in cases {
            assert_eq!(exit.status(), ExitCode::from(status), "{exit}");
        }
        assert_eq!(Exit::Failed(anyhow::anyhow!("disk full")).to_string(), "error: disk full");
        assert_eq!(Exit::Config("two problems\n".into()).to_string(), "two problems");
    }
}
