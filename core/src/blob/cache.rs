//! A random-access reader over ranged fetches (S3 GETs) with a small block cache and read-ahead.
//!
//! A demuxer reads a file in many small pieces, mostly forwards, with a few jumps (to the index
//! at the end, and back). Each read is served from fixed-size blocks; a block is fetched once,
//! kept in a small LRU, and shared by concurrent readers while in flight. When reads move
//! forwards block by block, the next blocks are fetched in the background so the pipeline does
//! not wait a round trip per block.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::{BlobReader, StorageError};
use crate::Cause;

/// One ranged fetch: exactly the bytes `[offset, offset + len)`, which lie inside the object.
#[async_trait::async_trait]
pub trait RangeFetch: Send + Sync + 'static {
    async fn fetch(&self, offset: u64, len: u64) -> Result<Bytes, StorageError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes per fetch. 1 MiB: a few GETs per second of 1080p video, small waste at the edges.
    pub block_size: u64,
    /// Blocks kept; must cover the read-ahead plus what one read spans.
    pub capacity: usize,
    /// Blocks fetched ahead of a forward-moving reader.
    pub read_ahead: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { block_size: 1 << 20, capacity: 8, read_ahead: 2 }
    }
}

type Block = Shared<BoxFuture<'static, Result<Bytes, Arc<StorageError>>>>;

struct State {
    blocks: HashMap<u64, Block>,
    /// Least recently used first.
    order: VecDeque<u64>,
    last_block: Option<u64>,
}

pub struct CachedReader<F> {
    fetch: Arc<F>,
    size: u64,
    config: CacheConfig,
    state: Mutex<State>,
    fetched: Arc<AtomicU64>,
}

impl<F: RangeFetch> CachedReader<F> {
    pub fn new(fetch: F, size: u64, config: CacheConfig) -> Self {
        let config = CacheConfig { capacity: config.capacity.max(config.read_ahead + 2), ..config };
        CachedReader {
            fetch: Arc::new(fetch),
            size,
            config,
            state: Mutex::new(State { blocks: HashMap::new(), order: VecDeque::new(), last_block: None }),
            fetched: Arc::new(AtomicU64::new(0)),
        }
    }

    fn block_count(&self) -> u64 {
        self.size.div_ceil(self.config.block_size)
    }

    /// The block's shared fetch, started if it is not cached; marks it most recently used.
    fn block(&self, state: &mut State, index: u64) -> Block {
        if let Some(block) = state.blocks.get(&index).cloned() {
            state.order.retain(|&i| i != index);
            state.order.push_back(index);
            return block;
        }
        let offset = index * self.config.block_size;
        let len = self.config.block_size.min(self.size - offset);
        let fetch = self.fetch.clone();
        let fetched = self.fetched.clone();
        let block = async move {
            let bytes = fetch.fetch(offset, len).await.map_err(Arc::new)?;
            fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if bytes.len() as u64 != len {
                return Err(Arc::new(StorageError::Unavailable(
                    format!("asked for {len} bytes at {offset}, got {}", bytes.len()).into(),
                )));
            }
            Ok(bytes)
        }
        .boxed()
        .shared();
        state.blocks.insert(index, block.clone());
        state.order.push_back(index);
        while state.order.len() > self.config.capacity {
            if let Some(old) = state.order.pop_front() {
                state.blocks.remove(&old);
            }
        }
        block
    }

    fn forget(&self, index: u64) {
        let mut state = self.state.lock().expect("cache lock");
        state.blocks.remove(&index);
        state.order.retain(|&i| i != index);
    }
}

fn unshare(e: Arc<StorageError>) -> StorageError {
    match &*e {
        StorageError::NotFound(key) => StorageError::NotFound(key.clone()),
        other => StorageError::Unavailable(Cause::described(other.to_string(), e.clone())),
    }
}

#[async_trait::async_trait]
impl<F: RangeFetch> BlobReader for CachedReader<F> {
    fn size(&self) -> u64 {
        self.size
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StorageError> {
        let end = offset.saturating_add(len as u64).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let (first, last) = (offset / self.config.block_size, (end - 1) / self.config.block_size);
        let (needed, ahead) = {
            let mut state = self.state.lock().expect("cache lock");
            let forwards = state.last_block.is_some_and(|prev| first == prev || first == prev + 1);
            state.last_block = Some(last);
            let needed: Vec<(u64, Block)> = (first..=last).map(|i| (i, self.block(&mut state, i))).collect();
            let ahead: Vec<Block> = if forwards {
                let stop = (last + 1 + self.config.read_ahead as u64).min(self.block_count());
                let missing: Vec<u64> = (last + 1..stop).filter(|i| !state.blocks.contains_key(i)).collect();
                missing.into_iter().map(|i| self.block(&mut state, i)).collect()
            } else {
                Vec::new()
            };
            (needed, ahead)
        };
        for block in ahead {
            // Drive the read-ahead in the background; its result lands in the cache.
            tokio::spawn(block.map(drop));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (index, block) in needed {
            let bytes = match block.await {
                Ok(bytes) => bytes,
                Err(e) => {
                    // Do not cache a failure: the next read tries again.
                    self.forget(index);
                    return Err(unshare(e));
                }
            };
            let block_start = index * self.config.block_size;
            let from = offset.max(block_start) - block_start;
            let to = end.min(block_start + bytes.len() as u64) - block_start;
            if first == last {
                // One block serves the whole read: hand out a slice, no copy.
                return Ok(bytes.slice(from as usize..to as usize));
            }
            out.extend_from_slice(&bytes[from as usize..to as usize]);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// An in-memory object that records every fetch.
    struct Recorder {
        data: Bytes,
        calls: StdMutex<Vec<(u64, u64)>>,
        fail_next: StdMutex<bool>,
    }

    #[async_trait::async_trait]
    impl RangeFetch for Arc<Recorder> {
        async fn fetch(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
            self.calls.lock().unwrap().push((offset, len));
            if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
                return Err(StorageError::Unavailable("injected".into()));
            }
            Ok(self.data.slice(offset as usize..(offset + len) as usize))
        }
    }

    fn reader(size: usize) -> (Arc<Recorder>, CachedReader<Arc<Recorder>>) {
        let data: Bytes = (0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into();
        let rec = Arc::new(Recorder { data, calls: StdMutex::new(Vec::new()), fail_next: StdMutex::new(false) });
        let config = CacheConfig { block_size: 1000, capacity: 4, read_ahead: 1 };
        (rec.clone(), CachedReader::new(rec, size as u64, config))
    }

    #[tokio::test]
    async fn reads_match_the_object_across_block_edges_and_at_the_end() {
        let (rec, r) = reader(4500);
        for (offset, len) in [(0u64, 10usize), (995, 10), (1990, 2100), (4490, 100), (4500, 5), (0, 4500)] {
            let got = r.read_at(offset, len).await.unwrap();
            let end = (offset as usize + len).min(4500);
            assert_eq!(&got[..], &rec.data[offset.min(4500) as usize..end], "read at {offset} of {len}");
        }
        assert!(rec.calls.lock().unwrap().iter().all(|&(o, l)| o % 1000 == 0 && l <= 1000), "whole blocks only");
    }

    #[tokio::test]
    async fn small_forward_reads_fetch_each_block_once_and_read_ahead() {
        let (rec, r) = reader(10_000);
        for offset in (0..5000).step_by(100) {
            r.read_at(offset, 100).await.unwrap();
        }
        tokio::task::yield_now().await;
        let calls = rec.calls.lock().unwrap().clone();
        let blocks: Vec<u64> = calls.iter().map(|&(o, _)| o / 1000).collect();
        let mut unique = blocks.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), blocks.len(), "no block fetched twice: {blocks:?}");
        assert!(blocks.contains(&5), "the block after the last one read is fetched ahead: {blocks:?}");
        assert_eq!(r.bytes_fetched(), 1000 * blocks.len() as u64);
    }

    #[tokio::test]
    async fn a_jump_does_not_read_ahead_and_a_failure_is_not_cached() {
        let (rec, r) = reader(10_000);
        r.read_at(9_500, 100).await.unwrap();
        assert_eq!(rec.calls.lock().unwrap().as_slice(), &[(9000, 1000)], "a jump fetches only what it needs");
        *rec.fail_next.lock().unwrap() = true;
        let err = r.read_at(100, 10).await.unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::StorageUnavailable);
        assert_eq!(&r.read_at(100, 10).await.unwrap()[..], &rec.data[100..110], "retried after the failure");
    }
}
