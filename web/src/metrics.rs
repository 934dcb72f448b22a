//! Prometheus text metrics without a metrics framework: a few counters and one latency
//! histogram, labelled by the matched route (never the raw path, so ids do not explode the
//! label space).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    stuck_requeued: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *self.requests.lock().expect("metrics").entry((method.into(), route.into(), status)).or_default() += 1;
        let mut latency = self.latency.lock().expect("metrics");
        let h = latency.entry(route.into()).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn upload(&self, bytes: u64) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The sweep enqueued `n` stuck jobs again (an alarm should watch this: it means jobs lost
    /// their message or their worker).
    pub fn stuck_requeued(&self, n: u64) {
        self.stuck_requeued.fetch_add(n, Ordering::Relaxed);
    }

    /// The exposition text; `queue` is (visible, in flight) when the queue answered.
    pub fn render(&self, queue: Option<(u64, u64)>) -> String {
        let mut out = String::new();
        out.push_str("# HELP anb_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE anb_http_requests_total counter\n");
        for ((method, route, status), n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "anb_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP anb_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE anb_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics").iter() {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ =
                    writeln!(out, "anb_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ =
                writeln!(out, "anb_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "anb_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "anb_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out.push_str("# HELP anb_uploads_total Videos uploaded through the API.\n# TYPE anb_uploads_total counter\n");
        let _ = writeln!(out, "anb_uploads_total {}", self.uploads.load(Ordering::Relaxed));
        out.push_str(
            "# HELP anb_upload_bytes_total Bytes of uploaded videos.\n# TYPE anb_upload_bytes_total counter\n",
        );
        let _ = writeln!(out, "anb_upload_bytes_total {}", self.upload_bytes.load(Ordering::Relaxed));
        out.push_str("# HELP anb_stuck_jobs_requeued_total Processing jobs whose attempt died and whose message was gone, enqueued again by the sweep.\n");
        out.push_str("# TYPE anb_stuck_jobs_requeued_total counter\n");
        let _ = writeln!(out, "anb_stuck_jobs_requeued_total {}", self.stuck_requeued.load(Ordering::Relaxed));
        if let Some((visible, in_flight)) = queue {
            out.push_str("# HELP anb_queue_messages Jobs in the queue, by state.\n# TYPE anb_queue_messages gauge\n");
            let _ = writeln!(out, "anb_queue_messages{{state=\"visible\"}} {visible}");
            let _ = writeln!(out, "anb_queue_messages{{state=\"in_flight\"}} {in_flight}");
        }
        out
    }
}
