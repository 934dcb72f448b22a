//! Worker metrics: jobs by outcome and code, processing time, realtime factor, queue wait, jobs
//! in flight. Rendered as Prometheus text, and on ECS also written as CloudWatch embedded
//! metric format (EMF) log lines, which CloudWatch turns into metrics with no agent.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::job::Outcome;

/// The CloudWatch namespace of the EMF lines.
pub const NAMESPACE: &str = "ANBVideo/Worker";

#[derive(Default)]
struct Sums {
    jobs: BTreeMap<(String, String), u64>,
    processing_secs: (f64, u64),
    realtime: (f64, u64),
    queue_wait_secs: (f64, u64),
}

pub struct WorkerMetrics {
    sums: Mutex<Sums>,
    in_flight: AtomicI64,
    /// Write EMF lines (on ECS).
    emf: bool,
}

impl WorkerMetrics {
    /// EMF lines when running on ECS (the agent sets `ECS_CONTAINER_METADATA_URI_V4`).
    pub fn new() -> Self {
        WorkerMetrics::with_emf(std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some())
    }

    pub fn with_emf(emf: bool) -> Self {
        WorkerMetrics { sums: Mutex::default(), in_flight: AtomicI64::new(0), emf }
    }

    pub fn job_started(&self) -> i64 {
        self.in_flight.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn job_ended(&self) -> i64 {
        self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn realtime_factor(&self, factor: f64) {
        let mut sums = self.sums.lock().expect("metrics");
        sums.realtime.0 += factor;
        sums.realtime.1 += 1;
    }

    pub fn job_finished(&self, outcome: &Outcome, took: Duration, sent_at_ms: u64) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let wait = Duration::from_millis(now_ms.saturating_sub(sent_at_ms).saturating_sub(took.as_millis() as u64));
        {
            let mut sums = self.sums.lock().expect("metrics");
            *sums.jobs.entry((outcome.label().into(), outcome.code().into())).or_default() += 1;
            sums.processing_secs.0 += took.as_secs_f64();
            sums.processing_secs.1 += 1;
            if sent_at_ms > 0 {
                sums.queue_wait_secs.0 += wait.as_secs_f64();
                sums.queue_wait_secs.1 += 1;
            }
        }
        if self.emf {
            println!("{}", emf_line(outcome, took, wait, self.in_flight(), now_ms));
        }
    }

    pub fn render(&self) -> String {
        let sums = self.sums.lock().expect("metrics");
        let mut out = String::new();
        out.push_str("# HELP anb_jobs_total Jobs by outcome and error code.\n# TYPE anb_jobs_total counter\n");
        for ((outcome, code), n) in &sums.jobs {
            let _ = writeln!(out, "anb_jobs_total{{outcome=\"{outcome}\",code=\"{code}\"}} {n}");
        }
        for (name, help, (sum, count)) in [
            ("anb_job_processing_seconds", "Time from receive to outcome.", sums.processing_secs),
            ("anb_job_queue_wait_seconds", "Time from enqueue to receive.", sums.queue_wait_secs),
            ("anb_job_realtime_factor", "Output media seconds per wall second, per completed job.", sums.realtime),
        ] {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {sum}\n{name}_count {count}");
        }
        let _ = writeln!(
            out,
            "# HELP anb_jobs_in_flight Jobs running now.\n# TYPE anb_jobs_in_flight gauge\nanb_jobs_in_flight {}",
            self.in_flight()
        );
        out
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}

/// One EMF record: the metrics as root members, declared under `_aws`.
fn emf_line(outcome: &Outcome, took: Duration, wait: Duration, in_flight: i64, now_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Outcome"], []],
                "Metrics": [
                    {"Name": "Jobs", "Unit": "Count"},
                    {"Name": "ProcessingSeconds", "Unit": "Seconds"},
                    {"Name": "QueueWaitSeconds", "Unit": "Seconds"},
                    {"Name": "InFlight", "Unit": "Count"}
                ]
            }]
        },
        "Outcome": outcome.label(),
        "ErrorCode": outcome.code(),
        "Jobs": 1,
        "ProcessingSeconds": took.as_secs_f64(),
        "QueueWaitSeconds": wait.as_secs_f64(),
        "InFlight": in_flight,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_emf() {
        let m = WorkerMetrics::with_emf(false);
        m.job_started();
        m.job_finished(&Outcome::Failed(anb_core::ErrorCode::InvalidInput), Duration::from_secs(2), 0);
        m.job_ended();
        let text = m.render();
        assert!(text.contains(r#"anb_jobs_total{outcome="failed",code="invalid-input"} 1"#), "{text}");
        assert!(text.contains("anb_job_processing_seconds_count 1") && text.contains("anb_jobs_in_flight 0"), "{text}");
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(&Outcome::Completed, Duration::from_secs(3), Duration::ZERO, 1, 5)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!((line["Outcome"].as_str(), line["ProcessingSeconds"].as_f64()), (Some("completed"), Some(3.0)));
    }
}
