//! Password hashing at a bounded cost. An argon2id hash takes 19 MiB of memory and tens of
//! milliseconds of CPU, so an anonymous flood of logins could otherwise take a task's memory
//! (each hash on its own blocking thread, each thread's allocator keeping what it freed).
//!
//! Here at most N hashes run at once (a semaphore; N from `ANB_PASSWORD_HASH_CONCURRENCY`, by
//! default from the task's memory and CPUs), each in work memory allocated once and reused, so
//! the memory of hashing is N × 19 MiB for the life of the process, whatever the load. A request
//! that cannot start its hash within [`QUEUE_WAIT`] gets 503 with `Retry-After`.
//!
//! Passwords are normalised the same way at signup and login (trimmed, Unicode NFC: a phone and
//! a laptop may type the same password in different code points) and are at most
//! [`MAX_PASSWORD_CHARS`] long, which bounds the hash's input.

use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// How long a request waits for a free hashing slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Stored hashes asking for more memory than this are not ours: refused rather than computed.
const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// What one hash of ours takes.
pub const HASH_MEMORY_BYTES: u64 = Params::DEFAULT_M_COST as u64 * 1024;

/// The form of a password that is hashed: trimmed, NFC.
pub fn normalize(password: &str) -> String {
    password.trim().nfc().collect()
}

/// The bounded hasher, shared by every request of a process.
pub struct Passwords {
    slots: Semaphore,
    queue_wait: Duration,
    /// Work memory of finished hashes, for the next ones.
    memory: Mutex<Vec<Vec<Block>>>,
    concurrency: usize,
}

impl Passwords {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Passwords {
            slots: Semaphore::new(concurrency),
            queue_wait: QUEUE_WAIT,
            memory: Mutex::new(Vec::new()),
            concurrency,
        }
    }

    /// How long a request may wait for a slot (default [`QUEUE_WAIT`]).
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The PHC string of a new hash of `password` (already normalised).
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.run(move |memory| hash_with(memory, &password))
            .await?
            .map_err(|e| ApiError::Internal(format!("hashing: {e}")))
    }

    /// Whether `password` (already normalised) matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> ApiResult<bool> {
        self.run(move |memory| verify_with(memory, &password, &hash)).await
    }

    /// Run `work` on the blocking pool with a slot and reused work memory.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> ApiResult<T> {
        let _slot = match tokio::time::timeout(self.queue_wait, self.slots.acquire()).await {
            Ok(slot) => slot.expect("never closed"),
            Err(_) => return Err(ApiError::Busy("every password-hashing slot is taken".into())),
        };
        let mut memory = self.memory.lock().expect("memory pool").pop().unwrap_or_default();
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (result, memory)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?;
        self.memory.lock().expect("memory pool").push(memory);
        Ok(result)
    }
}

/// The default number of hashes at once: at most an eighth of the memory the process may use
/// goes to hashing (a 1 GiB Fargate task: 6), and no more than two per CPU (beyond that they
/// only queue on the CPUs).
pub fn default_concurrency(memory_bytes: u64, cpus: usize) -> usize {
    let by_memory = (memory_bytes / 8 / HASH_MEMORY_BYTES) as usize;
    by_memory.min(cpus * 2).max(1)
}

/// The memory this process may use: its cgroup's limit (a container's, Fargate's task size),
/// else the machine's.
pub fn available_memory() -> u64 {
    let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| text.trim().parse::<u64>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
        })
        .unwrap_or(1 << 30);
    cgroup.map_or(machine, |limit| limit.min(machine))
}

fn argon2id(version: Version, params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, version, params)
}

fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String, String> {
    let params = Params::default();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::new());
    }
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2id(Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, &mut memory[..])
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

fn verify_with(memory: &mut Vec<Block>, password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if parsed.algorithm != ARGON2ID_IDENT || params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let Ok(version) = version else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    let params = match Params::new(params.m_cost(), params.t_cost(), params.p_cost(), Some(expected.len())) {
        Ok(p) => p,
        Err(_) => return false,
    };
    if argon2id(version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[test]
    fn our_hashes_verify_with_the_library_and_the_library_s_with_ours() {
        let mut memory = Vec::new();
        let ours = hash_with(&mut memory, "correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(verify_with(&mut memory, "correct horse", &ours));
        assert!(!verify_with(&mut memory, "correct horsf", &ours));
        use argon2::PasswordHasher;
        let theirs =
            Argon2::default().hash_password(b"battery", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(verify_with(&mut memory, "battery", &theirs));
        assert!(!verify_with(&mut memory, "not it", "not a hash"));
        assert_eq!(memory.len(), Params::default().block_count(), "the work memory is reused, not grown");
    }

    #[test]
    fn normalisation_is_trim_and_nfc() {
        assert_eq!(normalize("  pässword \n"), "pässword");
        // "ä" as a + combining diaeresis (NFD, as macOS types it) is the same password.
        assert_eq!(normalize("pa\u{308}ssword"), normalize("p\u{e4}ssword"));
    }

    #[test]
    fn the_default_follows_memory_and_cpus() {
        assert_eq!(default_concurrency(1 << 30, 1), 2, "a 1 GiB, 1 vCPU task: CPU-bound");
        assert_eq!(default_concurrency(512 << 20, 4), 3, "a 0.5 GiB task with 4 CPUs: memory-bound");
        assert_eq!(default_concurrency(64 << 20, 2), 1, "at least one");
    }
}
