//! Keep a CPU-capped process on as many CPUs as its quota allows.
//!
//! Fargate caps a task with a CFS quota (0.25, 0.5, 1, 2 vCPU) but lets its threads run on every
//! CPU the host (or microVM) shows. A pipeline runs several threads at once (demuxer, decoder,
//! scaler, encoder, muxer); spread over more CPUs than the quota pays for, they run side by side
//! on hyperthread siblings and share caches, and each does less per second of quota. Measured
//! here on 2 CPUs with one CPU's worth of work: 28.3 s of CPU per job spread, 23.3 s on one CPU,
//! where a single-threaded ffmpeg takes 22.4 s. So a process whose quota is below its CPU count
//! runs on `ceil(quota)` CPUs of its set (threads made later inherit it): the CPU the scheduler
//! started it on and the next ones. Not always the first: several capped processes on one host
//! (containers on an ECS or Kubernetes node, the bench's task sizes side by side) would all
//! crowd onto CPU 0 while the others idle.

/// The CPUs to keep out of `allowed` for `quota_cpus` (what `available_parallelism` reports:
/// the quota rounded up, or every allowed CPU when there is no quota): `current` (the CPU this
/// process runs on, when it is allowed) and the ones after it, wrapping around.
pub fn keep(allowed: &[usize], quota_cpus: usize, current: Option<usize>) -> Vec<usize> {
    let count = quota_cpus.clamp(1, allowed.len().max(1)).min(allowed.len());
    let start = current.and_then(|cpu| allowed.iter().position(|&c| c == cpu)).unwrap_or(0);
    allowed.iter().cycle().skip(start).take(count).copied().collect()
}

/// Pin this process to `ceil(quota)` CPUs when its quota is below the CPUs it may run on.
#[cfg(target_os = "linux")]
pub fn pin_to_quota() {
    // SAFETY: cpu_set_t is plain data; sched_{get,set}affinity read or write only the set given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return;
        }
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
        let quota = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(allowed.len());
        let current = usize::try_from(libc::sched_getcpu()).ok();
        let kept = keep(&allowed, quota, current);
        if kept.len() >= allowed.len() {
            return;
        }
        let mut pinned: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in &kept {
            libc::CPU_SET(cpu, &mut pinned);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &pinned) == 0 {
            tracing::info!(quota_cpus = quota, of = allowed.len(), cpus = ?kept, "CPU quota below the CPUs available: pinned");
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_to_quota() {}

#[cfg(test)]
mod tests {
    use super::keep;

    #[test]
    fn a_quota_keeps_its_rounded_up_share_of_the_allowed_cpus() {
        assert_eq!(keep(&[0, 1, 2, 3], 1, Some(0)), [0]);
        assert_eq!(keep(&[2, 3, 6, 7], 2, Some(2)), [2, 3]);
        assert_eq!(keep(&[0, 1], 2, Some(1)), [1, 0], "no quota: every CPU");
        assert_eq!(keep(&[0, 1], 8, Some(0)), [0, 1]);
        assert_eq!(keep(&[5], 0, Some(5)), [5], "at least one");
    }

    #[test]
    fn it_starts_from_the_cpu_the_process_runs_on() {
        assert_eq!(keep(&[0, 1, 2, 3], 1, Some(2)), [2], "not CPU 0 for every process of a host");
        assert_eq!(keep(&[0, 1, 2, 3], 2, Some(3)), [3, 0], "wrapping around");
        assert_eq!(keep(&[2, 3, 6, 7], 2, Some(6)), [6, 7]);
        assert_eq!(keep(&[2, 3, 6, 7], 1, Some(4)), [2], "a CPU outside the set: its first");
        assert_eq!(keep(&[2, 3, 6, 7], 1, None), [2]);
    }
}
