//! A one-second cache for the public read routes (rankings, public videos): what every visitor
//! sees alike, read far more often than it changes. Under load the database answers each
//! distinct query at most once per second per web process, whatever the request rate: concurrent
//! misses on one key wait for a single query (single flight). A vote through this process clears
//! it at once; changes made elsewhere (a worker completing a video, another web task's vote) show
//! within the TTL.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long an answer is served from memory.
pub const TTL: Duration = Duration::from_secs(1);
/// Distinct keys kept at most (pages × page sizes × cities); past it, the cache starts over.
const MAX_KEYS: usize = 4096;

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>;

#[derive(Default)]
pub struct MicroCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl MicroCache {
    /// The cached body for `key` if younger than the TTL, else the one `compute` makes (stored
    /// only when it succeeds).
    pub async fn get_or_compute<E, F, Fut>(&self, key: String, compute: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let slot = {
            let mut slots = self.slots.lock().expect("cache");
            if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
                slots.clear();
            }
            slots.entry(key).or_default().clone()
        };
        let mut entry = slot.lock().await;
        if let Some((at, body)) = entry.as_ref() {
            if at.elapsed() < TTL {
                return Ok(body.clone());
            }
        }
        let body = compute().await?;
        *entry = Some((Instant::now(), body.clone()));
        Ok(body)
    }

    /// Forget everything: the next reads go to the database.
    pub fn clear(&self) {
        self.slots.lock().expect("cache").clear();
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
}
