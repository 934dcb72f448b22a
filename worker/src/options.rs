//! How a worker runs jobs, from the settings and the CPUs this process may use.

use std::time::Duration;

use anb_core::Settings;
use anb_pipeline::BuildContext;

/// Attempts per job, as the original design's three receives before the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs at once (`ANB_WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// CPU threads each job's decoder, scaler and encoder are sized for.
    pub threads_per_job: usize,
    /// Each lease extension reaches this far (`ANB_VISIBILITY_TIMEOUT_SECS`).
    pub visibility: Duration,
    /// No progress for this long aborts a job (`ANB_STALL_TIMEOUT_SECS`).
    pub stall_timeout: Duration,
    /// Running jobs may finish for this long after SIGTERM (`ANB_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    /// Attempts a job may start (since its last redrive) before its transient failure is
    /// recorded as the video's and its message is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the first retry of a transient failure; doubles with each receive.
    pub retry_backoff: Duration,
}

/// The CPUs this process may use; respects cgroup CPU quotas (Fargate's task size).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// One job per two CPUs, at least one: x264 and libavcodec scale well to two threads per job,
/// and a second job fills what one leaves idle (I/O, muxing, single-threaded stretches).
pub fn default_concurrency(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

impl WorkerOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        let cpus = available_cpus();
        let concurrency = settings.worker_concurrency.unwrap_or_else(|| default_concurrency(cpus));
        WorkerOptions {
            concurrency,
            threads_per_job: (cpus / concurrency).max(1),
            visibility: Duration::from_secs(settings.visibility_timeout_secs),
            stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
            max_attempts: MAX_ATTEMPTS,
            retry_backoff: Duration::from_secs(10),
        }
    }

    /// An attempt whose heartbeat stopped this long ago is dead: a delivery may take it over.
    /// Half a lease: the heartbeat beats several times per lease while the attempt lives.
    pub fn stale_after(&self) -> Duration {
        self.visibility / 2
    }

    /// How long the end-of-job writes may keep retrying: the lease was extended at most a third
    /// of the window ago, so two thirds surely remain; half of that is safe.
    pub fn settle_budget(&self) -> Duration {
        self.visibility / 3
    }

    pub fn build_context(&self) -> BuildContext {
        BuildContext::with_threads(self.threads_per_job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_follows_the_cpus_and_the_setting_wins() {
        assert_eq!((default_concurrency(1), default_concurrency(2), default_concurrency(8)), (1, 1, 4));
        let settings = Settings { worker_concurrency: Some(3), ..Settings::default() };
        let options = WorkerOptions::from_settings(&settings);
        assert_eq!(options.concurrency, 3);
        assert_eq!(options.threads_per_job, (available_cpus() / 3).max(1));
        assert_eq!(options.visibility, Duration::from_secs(60));
    }
}
