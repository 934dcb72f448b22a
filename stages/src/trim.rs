//! `trim`: keep at most `max_duration_secs` of the input, from `start_secs`.
//!
//! The framework cuts every branch at the same running time, so audio and video stay in sync,
//! and stops the demuxer at the end of the window instead of reading the rest of the file.

use std::time::Duration;

use anb_pipeline::{Problem, Stage, Window};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_DURATION_SECS: f64 = 30.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trim {
    /// Where the output starts in the input, in seconds. Default 0.
    pub start_secs: f64,
    /// The longest output, in seconds. Default 30. Shorter inputs are kept whole.
    pub max_duration_secs: f64,
}

impl Default for Trim {
    fn default() -> Self {
        Trim { start_secs: 0.0, max_duration_secs: DEFAULT_MAX_DURATION_SECS }
    }
}

impl Stage for Trim {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !self.start_secs.is_finite() || self.start_secs < 0.0 {
            problems.push(Problem::field("start_secs", "must be a number of seconds, 0 or more"));
        }
        if !self.max_duration_secs.is_finite() || self.max_duration_secs <= 0.0 {
            problems.push(Problem::field("max_duration_secs", "must be a number of seconds greater than 0"));
        }
        problems
    }

    fn window(&self) -> Option<Window> {
        Some(Window {
            start: Duration::from_secs_f64(self.start_secs.max(0.0)),
            max_duration: Some(Duration::from_secs_f64(self.max_duration_secs.max(0.0))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_defaults_fill_in, assert_rejects_unknown_field, assert_round_trip};

    #[test]
    fn toml_round_trip_and_unknown_field() {
        assert_round_trip(&Trim { start_secs: 2.5, max_duration_secs: 10.0 });
        assert_rejects_unknown_field::<Trim>("max_duration = 30");
    }

    #[test]
    fn defaults_keep_the_first_30_seconds() {
        let trim: Trim = toml::from_str("").unwrap();
        assert_eq!(trim.window(), Some(Window { start: Duration::ZERO, max_duration: Some(Duration::from_secs(30)) }));
    }

    #[test]
    fn negative_and_zero_values_are_rejected() {
        let problems = Trim { start_secs: -1.0, max_duration_secs: 0.0 }.validate();
        let fields: Vec<_> = problems.iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, ["start_secs", "max_duration_secs"]);
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("start_secs = 2.0", Trim { start_secs: 2.0, ..Trim::default() });
        assert_eq!(Trim::default().max_duration_secs, DEFAULT_MAX_DURATION_SECS);
    }
}
