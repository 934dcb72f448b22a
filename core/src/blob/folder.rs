//! The local-folder backend (`file://FOLDER`): the embedded default of `anb serve`.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{BlobKey, BlobReader, BlobStore, Body, PresignedPut, StorageError, UrlSigner};
use crate::Cause;

pub struct FolderStore {
    root: PathBuf,
    signer: UrlSigner,
}

impl FolderStore {
    /// A store under `root` whose URLs are signed by `signer`.
    pub fn new(root: impl Into<PathBuf>, signer: UrlSigner) -> Self {
        FolderStore { root: root.into(), signer }
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

fn unavailable(e: std::io::Error) -> StorageError {
    StorageError::Unavailable(Cause::of(e))
}

/// Removes a temporary file when dropped, unless disarmed: a put that fails or whose future is
/// dropped leaves nothing behind. `dropped` tells a creation still running on the blocking pool
/// (a future dropped mid-create cannot stop it) to remove what it made.
struct TempFile {
    path: Option<PathBuf>,
    dropped: Arc<AtomicBool>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Create `path` on the blocking pool. If the guard was dropped meanwhile, the file is removed
/// here: the guard's own removal may have run before the file existed.
async fn create_guarded(temp: &TempFile) -> std::io::Result<tokio::fs::File> {
    let (path, dropped) = (temp.path.clone().expect("armed"), temp.dropped.clone());
    let file = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path)?;
        if dropped.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&path);
            return Err(std::io::Error::other("the put was dropped"));
        }
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()))
}

impl FolderStore {
    /// Write `body` to a temporary file, then give it its name: by rename (replacing), or, when
    /// `only_new`, by a link that fails if the name is taken.
    async fn write(&self, key: &BlobKey, mut body: Body, only_new: bool) -> Result<u64, StorageError> {
        let target = self.path(key);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(unavailable)?;
        }
        let temp = TempFile { path: Some(temp_path(&target)), dropped: Arc::default() };
        let temp_path = temp.path.clone().expect("armed");
        let file = create_guarded(&temp).await.map_err(unavailable)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            out.write_all(&chunk).await.map_err(unavailable)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(unavailable)?;
        out.get_ref().sync_data().await.map_err(unavailable)?;
        if only_new {
            // A hard link fails if the target exists: an atomic create-if-absent. The temp
            // file's guard removes the temporary name either way.
            return match tokio::fs::hard_link(&temp_path, &target).await {
                Ok(()) => Ok(written),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(StorageError::AlreadyExists(key.clone()))
                }
                Err(e) => Err(unavailable(e)),
            };
        }
        tokio::fs::rename(&temp_path, &target).await.map_err(unavailable)?;
        let mut temp = temp;
        temp.path = None; // renamed: nothing to clean up
        Ok(written)
    }
}

#[async_trait::async_trait]
impl BlobStore for FolderStore {
    async fn put_stream(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError> {
        self.write(key, body, false).await
    }

    async fn put_stream_new(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError> {
        self.write(key, body, true).await
    }

    async fn open(&self, key: &BlobKey) -> Result<Arc<dyn BlobReader>, StorageError> {
        let path = self.path(key);
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
            .await
            .map_err(|e| StorageError::Unavailable(Cause::of(e)))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::NotFound(key.clone()),
                _ => unavailable(e),
            })?;
        let size = file.metadata().map_err(unavailable)?.len();
        Ok(Arc::new(FolderReader { file: Arc::new(file), size, read: Arc::new(AtomicU64::new(0)) }))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(unavailable(e)),
            _ => Ok(()),
        }
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool, StorageError> {
        tokio::fs::try_exists(self.path(key)).await.map_err(unavailable)
    }

    async fn presign_get(&self, key: &BlobKey, expires_in: Duration) -> Result<String, StorageError> {
        Ok(self.signer.sign(key, expires_in, SystemTime::now()))
    }

    async fn presign_put(&self, key: &BlobKey, size: u64, expires_in: Duration) -> Result<PresignedPut, StorageError> {
        let url = self.signer.sign_put(key, size, expires_in, SystemTime::now());
        Ok(PresignedPut { url, headers: vec![("content-length".into(), size.to_string())] })
    }
}

struct FolderReader {
    file: Arc<std::fs::File>,
    size: u64,
    read: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl BlobReader for FolderReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn bytes_fetched(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StorageError> {
        let len = len.min(self.size.saturating_sub(offset) as usize);
        let file = self.file.clone();
        let read = self.read.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            read.fetch_add(filled as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(buf))
        })
        .await
        .map_err(|e| StorageError::Unavailable(Cause::of(e)))?
        .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A put dropped while its temporary file is being created on the blocking pool: the guard's
    // removal ran first (nothing to remove yet), so the creation must remove what it makes.
    #[tokio::test]
    async fn a_creation_that_finishes_after_its_guard_was_dropped_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".x.partial");
        let guard = TempFile { path: Some(path.clone()), dropped: Arc::default() };
        guard.dropped.store(true, Ordering::SeqCst); // as the guard's drop does, before the file exists
        assert!(create_guarded(&guard).await.is_err());
        assert!(!path.exists(), "the late creation removed its file");
        let live = TempFile { path: Some(dir.path().join(".y.partial")), dropped: Arc::default() };
        assert!(create_guarded(&live).await.is_ok() && dir.path().join(".y.partial").exists());
        drop(live);
        assert!(!dir.path().join(".y.partial").exists(), "the guard removes a file it outlives");
    }
    use futures_util::stream;

    fn store(dir: &Path) -> FolderStore {
        FolderStore::new(dir, UrlSigner::new("k", "http://127.0.0.1:8000/files"))
    }

    /// `total` deterministic bytes in 64 KiB chunks.
    fn body(total: usize) -> (Vec<u8>, Body) {
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let chunks: Vec<std::io::Result<Bytes>> =
            data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        (data, stream::iter(chunks).boxed())
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in walk(dir) {
            out.push(entry.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_50_mib_streaming_put_reads_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = BlobKey::new("uploads/big.bin").unwrap();
        let (data, body) = body(50 << 20);
        assert_eq!(s.put_stream(&key, body).await.unwrap(), data.len() as u64);
        let reader = s.open(&key).await.unwrap();
        assert_eq!(reader.size(), data.len() as u64);
        for (offset, len) in [(0usize, 10usize), (1 << 20, 65536), (data.len() - 5, 100), (12_345_678, 3_000_000)] {
            let got = reader.read_at(offset as u64, len).await.unwrap();
            let end = (offset + len).min(data.len());
            assert_eq!(&got[..], &data[offset..end], "range {offset}+{len}");
        }
        assert!(reader.read_at(data.len() as u64, 10).await.unwrap().is_empty());
        assert_eq!(files_in(dir.path()), ["uploads/big.bin"]);
    }

    #[tokio::test]
    async fn a_failed_or_dropped_put_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = BlobKey::new("uploads/x.bin").unwrap();
        let failing: Body = stream::iter(vec![
            Ok(Bytes::from_static(b"some bytes")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ])
        .boxed();
        let err = s.put_stream(&key, failing).await.unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::UploadInterrupted);
        assert!(!s.exists(&key).await.unwrap());

        // A body that never ends, and a put future dropped while it waits.
        let endless: Body = stream::once(async { Ok(Bytes::from_static(b"start")) }).chain(stream::pending()).boxed();
        let put = s.put_stream(&key, endless);
        // Drop the put while it waits for more body (the timeout drops the future).
        let outcome = tokio::time::timeout(Duration::from_millis(200), put).await;
        assert!(outcome.is_err(), "an endless body cannot complete");
        assert_eq!(files_in(dir.path()), Vec::<String>::new(), "no object and no partial file");
    }

    #[tokio::test]
    async fn replace_delete_exists_and_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = BlobKey::new("processed/a.mp4").unwrap();
        assert!(matches!(s.open(&key).await, Err(StorageError::NotFound(_))));
        s.put_stream(&key, body(10).1).await.unwrap();
        s.put_stream(&key, body(20).1).await.unwrap();
        assert_eq!(s.open(&key).await.unwrap().size(), 20, "a second put replaces the object");
        assert!(s.exists(&key).await.unwrap());
        s.delete(&key).await.unwrap();
        s.delete(&key).await.unwrap();
        assert!(!s.exists(&key).await.unwrap());
        let url = s.presign_get(&key, Duration::from_secs(60)).await.unwrap();
        assert!(url.starts_with("http://127.0.0.1:8000/files/processed/a.mp4?expires="), "{url}");
    }
}
