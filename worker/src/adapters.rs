//! Blob storage as the pipeline's byte source and sink.
//!
//! The pipeline calls these from GStreamer's streaming threads, where blocking is how
//! backpressure works; they bridge to the async store with the runtime's `Handle`. They must not
//! be called from a tokio worker thread (the pipeline never does).

use std::io;
use std::sync::Arc;

use anb_core::blob::{BlobKey, BlobReader, BlobStore, CacheConfig, S3Options, StorageError};
use anb_core::Cause;
use anb_pipeline::{ByteSink, ByteSource, SinkOptions, SourceOptions};
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks in flight between the muxer and the store: enough to keep an upload busy, small
/// enough that a slow store slows the muxer instead of filling memory.
const SINK_QUEUE_CHUNKS: usize = 16;

/// S3 settings from the pipeline file's `download` and `upload` stages.
pub fn s3_options(source: SourceOptions, sink: SinkOptions) -> S3Options {
    S3Options {
        part_size: sink.part_size_mib as usize * (1 << 20),
        cache: CacheConfig {
            block_size: u64::from(source.block_size_kib.max(4)) * 1024,
            capacity: source.cache_blocks as usize,
            read_ahead: source.read_ahead_blocks as usize,
        },
        ..S3Options::default()
    }
}

/// Random access to a stored object.
pub struct BlobSource {
    reader: Arc<dyn BlobReader>,
    rt: Handle,
}

impl BlobSource {
    pub async fn open(store: &dyn BlobStore, key: &BlobKey) -> Result<Self, StorageError> {
        Ok(BlobSource { reader: store.open(key).await?, rt: Handle::current() })
    }

    /// The reader underneath, for its fetch counters.
    pub fn reader(&self) -> Arc<dyn BlobReader> {
        self.reader.clone()
    }
}

impl ByteSource for BlobSource {
    fn size(&self) -> u64 {
        self.reader.size()
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.rt.block_on(self.reader.read_at(offset, len)).map(|b| b.to_vec()).map_err(io::Error::other)
    }
}

/// A streaming put fed by the pipeline's output. The object appears when `finish` returns;
/// `abort`, a failed run, or dropping the sink unfinished leaves nothing behind (the end of the
/// channel alone would look like the end of the output, and publish a truncated file).
pub struct BlobSink {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    put: Option<JoinHandle<Result<u64, StorageError>>>,
    rt: Handle,
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        if let Some(put) = self.put.take() {
            // Unfinished: poison the body (the store discards on an error item) and cancel the
            // put (a dropped put leaves nothing either), before the sender goes.
            if let Some(tx) = &self.tx {
                let _ = tx.try_send(Err(io::Error::other("the output was dropped unfinished")));
            }
            put.abort();
        }
    }
}

impl BlobSink {
    /// Start the put; call from inside the runtime.
    pub fn start(store: Arc<dyn BlobStore>, key: BlobKey) -> Self {
        let (tx, rx) = mpsc::channel(SINK_QUEUE_CHUNKS);
        let body = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        let put = tokio::spawn(async move { store.put_stream(&key, body).await });
        BlobSink { tx: Some(tx), put: Some(put), rt: Handle::current() }
    }

    fn wait(mut self) -> Result<u64, StorageError> {
        drop(self.tx.take()); // end of body
        let put = self.put.take().expect("not yet waited for");
        self.rt
            .block_on(put)
            .map_err(|e| StorageError::Unavailable(Cause::described(format!("the upload task failed: {e}"), e)))?
    }
}

impl ByteSink for BlobSink {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        // A closed channel means the put already failed; `finish` reports why.
        self.tx
            .as_ref()
            .expect("open until finished")
            .blocking_send(Ok(Bytes::copy_from_slice(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    fn finish(self: Box<Self>) -> io::Result<u64> {
        self.wait().map_err(io::Error::other)
    }

    fn abort(self: Box<Self>) -> io::Result<()> {
        // An error item makes the store discard what it has.
        if let Some(tx) = &self.tx {
            let _ = tx.blocking_send(Err(io::Error::other("the run failed")));
        }
        match self.wait() {
            Ok(_) => Err(io::Error::other("the store kept an aborted upload")),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anb_core::blob::{FolderStore, UrlSigner};
    use anb_pipeline::{BuildContext, ErrorCode, Pipeline, RunOptions};
    use std::path::{Path, PathBuf};

    fn repo_root() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    fn showcase() -> Arc<Pipeline> {
        let text = std::fs::read_to_string(repo_root().join("pipeline.toml")).unwrap();
        let ctx = BuildContext { base_dir: Some(repo_root()), ..BuildContext::default() };
        Arc::new(Pipeline::load(&text, "pipeline.toml", &anb_stages::registry(), &[], &ctx).unwrap())
    }

    fn generate_clip(path: &Path) {
        let desc = format!(
            "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=160,height=120,framerate=10/1 \
             ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location={}",
            path.display()
        );
        let status = std::process::Command::new("gst-launch-1.0")
            .arg("-q")
            .args(desc.split_whitespace())
            .status()
            .expect("gst-launch-1.0 runs");
        assert!(status.success());
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for sub in std::fs::read_dir(dir).unwrap() {
            let sub = sub.unwrap().path();
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap().path();
                out.push(f.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    // The worker's path: object in, pipeline, object out, all through the blob store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clip_goes_from_store_to_store_and_a_failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(FolderStore::new(dir.path(), UrlSigner::new("k", "http://x/files")));
        std::fs::create_dir_all(dir.path().join("uploads")).unwrap();
        generate_clip(&dir.path().join("uploads/v1.mp4"));
        let (input, output) = (BlobKey::new("uploads/v1.mp4").unwrap(), BlobKey::new("processed/v1.mp4").unwrap());

        let source = Arc::new(BlobSource::open(store.as_ref(), &input).await.unwrap());
        let sink = Box::new(BlobSink::start(store.clone(), output.clone()));
        let report = showcase().run(source, sink, RunOptions::default()).await.unwrap();
        let stored = store.open(&output).await.unwrap().size();
        assert_eq!(stored, report.bytes_written);
        let head = store.open(&output).await.unwrap().read_at(4, 4).await.unwrap();
        assert_eq!(&head[..], b"ftyp", "an MP4 was stored");

        // Not a video: the run fails, and the aborted put leaves no object and no partial file.
        store
            .put_stream(
                &BlobKey::new("uploads/v2.mp4").unwrap(),
                Box::pin(tokio_stream::iter(vec![Ok(Bytes::from_static(&[7u8; 4096]))])),
            )
            .await
            .unwrap();
        let source =
            Arc::new(BlobSource::open(store.as_ref(), &BlobKey::new("uploads/v2.mp4").unwrap()).await.unwrap());
        let sink = Box::new(BlobSink::start(store.clone(), BlobKey::new("processed/v2.mp4").unwrap()));
        let err = showcase().run(source, sink, RunOptions::default()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert_eq!(files_under(dir.path()), ["processed/v1.mp4", "uploads/v1.mp4", "uploads/v2.mp4"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_dropped_unfinished_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(FolderStore::new(dir.path(), UrlSigner::new("k", "http://x/files")));
        let sink = BlobSink::start(store.clone(), BlobKey::new("processed/v3.mp4").unwrap());
        let sink = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            sink.write(&[1u8; 10_000]).unwrap();
            sink
        })
        .await
        .unwrap();
        drop(sink); // a run that panicked or was torn down without finish or abort
                    // The cancelled put cleans up in the background: poll for the outcome (bounded).
        let left = || -> Vec<_> {
            std::fs::read_dir(dir.path().join("processed"))
                .map(|d| d.map(|e| e.unwrap().file_name()).collect())
                .unwrap_or_default()
        };
        for _ in 0..250 {
            if left().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(left().is_empty(), "left behind: {:?}", left());
        assert!(!store.exists(&BlobKey::new("processed/v3.mp4").unwrap()).await.unwrap());
    }
}
