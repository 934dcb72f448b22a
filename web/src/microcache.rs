//! A short-lived cache of JSON answers. Two live in a web process: one for the public read routes
//! (rankings, public videos: what every visitor sees alike, read far more often than it changes;
//! [`PUBLIC_TTL`]) and one for each player's own reads (`/api/videos`, `/api/videos/{id}`, keyed
//! by the player: the calls an app polls while its video processes; [`OWN_TTL`]). Under load the
//! database answers each distinct query at most once per TTL per web process, whatever the
//! request rate: concurrent misses on one key wait for a single query (single flight). A write
//! through this process clears what it changed at once (a vote the public answers, an upload or
//! a delete its owner's); changes made elsewhere (a worker completing a video, another web
//! task's write) show within the TTL.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// How long a public answer is served from memory.
pub const PUBLIC_TTL: Duration = Duration::from_secs(1);
/// How long a player's own answer is served from memory: short, because a status the worker
/// changed shows only after it (a client polling for `completed` waits up to this much more).
pub const OWN_TTL: Duration = Duration::from_millis(250);
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
    ttl: Duration,
    slots: moka::sync::Cache<String, Arc<Slot>>,
    /// Counts invalidations. A read that was computing while one happened may hold an answer
    /// from before the write: it must not leave that answer behind the invalidation.
    invalidations: AtomicU64,
}

impl MicroCache {
    pub fn new(ttl: Duration) -> Self {
        MicroCache::with_max_bytes(ttl, MAX_BYTES)
    }

    pub fn with_max_bytes(ttl: Duration, max_bytes: u64) -> Self {
        let slots = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, slot: &Arc<Slot>| {
                (key.len() as u32).saturating_add(slot.bytes.load(Ordering::Relaxed))
            })
            // An entry is useless after its TTL; let the cache drop it rather than keep the bytes.
            .time_to_live(ttl * 2)
            .build();
        MicroCache { ttl, slots, invalidations: AtomicU64::new(0) }
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
            if at.elapsed() < self.ttl {
                return Ok(body.clone());
            }
        }
        let before = self.invalidations.load(Ordering::SeqCst);
        let body = compute().await?;
        *answer = Some((Instant::now(), body.clone()));
        slot.bytes.store(u32::try_from(body.len()).unwrap_or(u32::MAX), Ordering::Relaxed);
        drop(answer);
        // Insert again so the cache weighs the slot with its answer.
        self.slots.insert(key.clone(), slot);
        // An invalidation while this was computing may have removed the slot before the insert
        // above put it back: drop it again (at worst a needless miss on this key).
        // `invalidate` counts before it removes, so one of the two removals comes last.
        if self.invalidations.load(Ordering::SeqCst) != before {
            self.slots.invalidate(&key);
        }
        Ok(body)
    }

    /// Forget one key: its next read goes to the database.
    pub fn invalidate(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.slots.invalidate(key);
    }

    /// Forget everything: the next reads go to the database.
    pub fn clear(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.slots.invalidate_all();
    }

    /// The bytes held now (approximately: the cache applies its bookkeeping in batches).
    pub fn weighed_bytes(&self) -> u64 {
        self.slots.run_pending_tasks();
        self.slots.weighted_size()
    }
}

/// A JSON answer from `cache` for `key`, computed on a miss. Only successes are kept, so an
/// error (a 404, a database blip) is never served from memory.
pub async fn json_response<T, F, Fut>(cache: &MicroCache, key: String, compute: F) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let body = cache
        .get_or_compute(key, || async {
            let value = compute().await?;
            serde_json::to_vec(&value).map(Bytes::from).map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_share_one_computation_and_clear_forgets() {
        let cache = Arc::new(MicroCache::new(PUBLIC_TTL));
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
    async fn a_read_in_flight_during_an_invalidation_does_not_leave_its_old_answer() {
        let cache = Arc::new(MicroCache::new(PUBLIC_TTL));
        let (computing, go) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let read = {
            let (cache, computing, go) = (cache.clone(), computing.clone(), go.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute("list".into(), || async move {
                        // Read the database before the write...
                        computing.notify_one();
                        go.notified().await;
                        Ok::<_, ()>(Bytes::from_static(b"before"))
                    })
                    .await
            })
        };
        computing.notified().await;
        // ...the write commits and forgets the key while that read is still answering.
        cache.invalidate("list");
        go.notify_one();
        assert_eq!(
            read.await.unwrap().unwrap(),
            Bytes::from_static(b"before"),
            "the overlapping read answers what it read"
        );
        let next = cache.get_or_compute("list".into(), || async { Ok::<_, ()>(Bytes::from_static(b"after")) }).await;
        assert_eq!(next.unwrap(), Bytes::from_static(b"after"), "a read after the write sees it");
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_bytes_not_keys() {
        let cache = MicroCache::with_max_bytes(PUBLIC_TTL, 1 << 20);
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
