//! A one-second cache for the public read routes (rankings, public videos): what every visitor
//! sees alike, read far more often than it changes. Under load the database answers each
//! distinct query at most once per second per web process, whatever the request rate: concurrent
//! misses on one key wait for a single query (single flight). A vote through this process clears
//! it at once; changes made elsewhere (a worker completing a video, another web task's vote) show
//! within the TTL.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long an answer is served from memory.
pub const TTL: Duration = Duration::from_secs(1);
/// The most bytes of answers (and their keys) kept; past it the least recently used go. The
/// keys are bounded too (a city filter is at most 100 characters, pages are numbers), so a
/// client varying them only churns this budget.
pub const MAX_BYTES: u64 = 16 << 20;

/// One key's answer, filled by the first request that misses.
#[derive(Default)]
struct Slot {
    answer: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    /// The answer's size, for the cache's weigher (which cannot wait on the lock).
    bytes: AtomicU32,
}

pub struct MicroCache {
    slots: moka::sync::Cache<String, Arc<Slot>>,
}

impl Default for MicroCache {
    fn default() -> Self {
        MicroCache::with_max_bytes(MAX_BYTES)
    }
}

impl MicroCache {
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        let slots = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, slot: &Arc<Slot>| (key.len() as u32).saturating_add(slot.bytes.load(Ordering::Relaxed)))
            // An entry is useless after its TTL; let the cache drop it rather than keep the bytes.
            .time_to_live(TTL * 2)
            .build();
        MicroCache { slots }
    }

    /// The cached body for `key` if younger than the TTL, else the one `compute` makes (stored
    /// only when it succeeds).
    pub async fn get_or_compute<E, F, Fut>(&self, key: String, compute: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        // `get_with` hands concurrent misses the same slot: they wait on one computation.
        let slot = self.slots.get_with(key.clone(), Arc::default);
        let mut answer = slot.answer.lock().await;
        if let Some((at, body)) = answer.as_ref() {
            if at.elapsed() < TTL {
                return Ok(body.clone());
            }
        }
        let body = compute().await?;
        *answer = Some((Instant::now(), body.clone()));
        slot.bytes.store(u32::try_from(body.len()).unwrap_or(u32::MAX), Ordering::Relaxed);
        drop(answer);
        // Insert again so the cache weighs the slot with its answer.
        self.slots.insert(key, slot);
        Ok(body)
    }

    /// Forget everything: the next reads go to the database.
    pub fn clear(&self) {
        self.slots.invalidate_all();
    }

    /// The bytes held now (approximately: the cache applies its bookkeeping in batches).
    pub fn weighed_bytes(&self) -> u64 {
        self.slots.run_pending_tasks();
        self.slots.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_share_one_computation_and_clear_forgets() {
        let cache = Arc::new(MicroCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("k".into(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(Bytes::from_static(b"answer"))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Bytes::from_static(b"answer"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one query for sixteen concurrent requests");
        cache.clear();
        let again = cache.get_or_compute("k".into(), || async { Ok::<_, ()>(Bytes::from_static(b"new")) }).await;
        assert_eq!(again.unwrap(), Bytes::from_static(b"new"));
        let failed = cache.get_or_compute("e".into(), || async { Err::<Bytes, _>("down") }).await;
        assert_eq!(failed, Err("down"));
        let after = cache.get_or_compute("e".into(), || async { Ok::<_, ()>(Bytes::from_static(b"up")) }).await;
        assert_eq!(after.unwrap(), Bytes::from_static(b"up"), "failures are not cached");
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_bytes_not_keys() {
        let cache = MicroCache::with_max_bytes(1 << 20);
        let answer = Bytes::from(vec![b'x'; 100 << 10]);
        for i in 0..200 {
            let body = answer.clone();
            cache.get_or_compute(format!("rankings:{i}"), || async move { Ok::<_, ()>(body) }).await.unwrap();
        }
        let held = cache.weighed_bytes();
        assert!(held <= 1 << 20, "{held} bytes held for 200 answers of 100 KiB");
        assert!(held >= 500 << 10, "it still caches: {held}");
    }
}
