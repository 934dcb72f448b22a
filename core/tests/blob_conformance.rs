//! The blob store's conformance suite, run on S3 (moto) and on a local folder.

use std::sync::Arc;
use std::time::Duration;

use anb_core::blob::{BlobKey, BlobStore, Body, FolderStore, S3Options, S3Store, StorageError, UrlSigner};
use bytes::Bytes;
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};

/// A store plus a way to count what a failed put may have left behind.
enum Backend {
    Folder { store: Arc<FolderStore>, dir: tempfile::TempDir },
    S3 { store: Arc<S3Store>, client: aws_sdk_s3::Client },
}

impl Backend {
    async fn folder() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path(), UrlSigner::new("secret", "http://127.0.0.1:1/files"));
        Backend::Folder { store: Arc::new(store), dir }
    }

    async fn s3() -> Backend {
        let config = anb_core::testing::aws_config().await;
        let store =
            anb_core::testing::s3_store(&config, S3Options { part_size: 5 << 20, ..S3Options::default() }).await;
        Backend::S3 { store: Arc::new(store), client: S3Store::client(&config) }
    }

    fn store(&self) -> Arc<dyn BlobStore> {
        match self {
            Backend::Folder { store, .. } => store.clone(),
            Backend::S3 { store, .. } => store.clone(),
        }
    }

    /// Files in the folder (temporary ones included), or incomplete multipart uploads plus
    /// objects in the bucket.
    async fn leftovers(&self) -> usize {
        match self {
            Backend::Folder { dir, .. } => walk(dir.path()),
            Backend::S3 { store, client } => {
                let uploads = client.list_multipart_uploads().bucket(store.bucket()).send().await.unwrap();
                let objects = client.list_objects_v2().bucket(store.bucket()).send().await.unwrap();
                uploads.uploads().len() + objects.contents().len()
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk(&p) } else { 1 }).sum()
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod folder { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::folder().await).await }
        )* }
        mod s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::s3().await).await }
        )* }
    };
}

on_both_stores!(
    a_50_mib_streaming_put_reads_back_byte_for_byte,
    a_put_whose_body_fails_leaves_nothing_behind,
    a_dropped_put_leaves_nothing_behind,
    small_objects_replace_delete_exists_and_missing,
    a_create_only_put_never_replaces_and_the_loser_leaves_nothing,
);

fn key(s: &str) -> BlobKey {
    BlobKey::new(s).unwrap()
}

/// `total` pseudo-random bytes, and a body that streams them in uneven chunks.
fn body(total: usize, seed: u64) -> (Bytes, Body) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; total];
    rng.fill(&mut data[..]);
    let data = Bytes::from(data);
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < total {
        let len = rng.random_range(1..300_000).min(total - at);
        chunks.push(Ok(data.slice(at..at + len)));
        at += len;
    }
    (data, futures_util::stream::iter(chunks).boxed())
}

/// A body that yields `good` bytes, then either fails or stalls forever.
fn broken_body(good: usize, stall: bool) -> Body {
    let (_, head) = body(good, 7);
    let tail = if stall {
        futures_util::stream::pending().boxed()
    } else {
        futures_util::stream::once(async {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away"))
        })
        .boxed()
    };
    head.chain(tail).boxed()
}

async fn a_50_mib_streaming_put_reads_back_byte_for_byte(backend: Backend) {
    let store = backend.store();
    let (data, body) = body(50 << 20, 1);
    let k = key("uploads/big.mp4");
    assert_eq!(store.put_stream(&k, body).await.unwrap(), data.len() as u64);
    let reader = store.open(&k).await.unwrap();
    assert_eq!(reader.size(), data.len() as u64);

    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for _ in 0..40 {
        let offset = rng.random_range(0..data.len());
        let len = rng.random_range(1..3_000_000);
        let got = reader.read_at(offset as u64, len).await.unwrap();
        let end = (offset + len).min(data.len());
        assert!(got[..] == data[offset..end], "range {offset}+{len} differs");
    }
    // The whole object, front to back in demuxer-sized reads.
    let mut at = 0;
    while at < data.len() {
        let got = reader.read_at(at as u64, 188 * 1024).await.unwrap();
        assert!(!got.is_empty() && got[..] == data[at..at + got.len()], "sequential read at {at} differs");
        at += got.len();
    }
    assert!(reader.read_at(data.len() as u64, 10).await.unwrap().is_empty(), "nothing past the end");
    assert!(reader.bytes_fetched() >= data.len() as u64);
}

async fn a_put_whose_body_fails_leaves_nothing_behind(backend: Backend) {
    let store = backend.store();
    let k = key("uploads/interrupted.mp4");
    // 12 MiB: two whole parts have gone up before the body fails.
    let err = store.put_stream(&k, broken_body(12 << 20, false)).await.unwrap_err();
    assert!(matches!(err, StorageError::Body(_)), "{err:?}");
    assert_eq!(err.code(), anb_core::ErrorCode::UploadInterrupted);
    assert!(!store.exists(&k).await.unwrap());
    assert_eq!(backend.leftovers().await, 0, "no object, no temporary file, no incomplete multipart upload");
}

async fn a_dropped_put_leaves_nothing_behind(backend: Backend) {
    let store = backend.store();
    let k = key("uploads/dropped.mp4");
    // The body stalls after 7 MiB; the caller gives up and drops the put.
    let put = store.put_stream(&k, broken_body(7 << 20, true));
    assert!(tokio::time::timeout(Duration::from_secs(3), put).await.is_err(), "the put waits for the stalled body");
    // The abort of a dropped multipart upload runs in the background: give it a bounded while.
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = backend.leftovers().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "nothing left after a dropped put");
    assert!(!store.exists(&k).await.unwrap());
}

async fn small_objects_replace_delete_exists_and_missing(backend: Backend) {
    let store = backend.store();
    let k = key("processed/clip.mp4");
    assert!(!store.exists(&k).await.unwrap());
    assert!(matches!(store.open(&k).await.map(drop), Err(StorageError::NotFound(_))));
    let one = futures_util::stream::iter([Ok(Bytes::from_static(b"first version"))]).boxed();
    assert_eq!(store.put_stream(&k, one).await.unwrap(), 13);
    let two = futures_util::stream::iter([Ok(Bytes::from_static(b"second")), Ok(Bytes::from_static(b" one"))]).boxed();
    assert_eq!(store.put_stream(&k, two).await.unwrap(), 10);
    assert!(store.exists(&k).await.unwrap());
    let reader = store.open(&k).await.unwrap();
    assert_eq!(&reader.read_at(0, 100).await.unwrap()[..], b"second one", "replaced whole");
    assert_eq!(&reader.read_at(7, 3).await.unwrap()[..], b"one");
    let empty = key("empty.bin");
    assert_eq!(store.put_stream(&empty, futures_util::stream::empty().boxed()).await.unwrap(), 0);
    assert_eq!(store.open(&empty).await.unwrap().size(), 0);
    store.delete(&k).await.unwrap();
    store.delete(&k).await.unwrap();
    assert!(!store.exists(&k).await.unwrap());
}

/// S3 only: the folder backend's URLs are served by the web tier, whose tests download them.
#[tokio::test]
async fn s3_presigned_url_downloads_with_a_plain_http_client() {
    let Backend::S3 { store, .. } = Backend::s3().await else { unreachable!() };
    let k = key("processed/shared.mp4");
    let (data, body) = body(300_000, 3);
    store.put_stream(&k, body).await.unwrap();
    let url = store.presign_get(&k, Duration::from_secs(60)).await.unwrap();
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=60"), "{url}");
    let got = reqwest::get(&url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "video/mp4", "stored with the type its key names");
    assert_eq!(got.bytes().await.unwrap(), data);
    let poster = key("posters/shared.jpg");
    store
        .put_stream(&poster, Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(b"\xff\xd8\xff"))])))
        .await
        .unwrap();
    let got = reqwest::get(&store.presign_get(&poster, Duration::from_secs(60)).await.unwrap()).await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/jpeg");
    // moto checks neither the signature nor the expiry of presigned URLs, so an expired URL
    // would still download here; the expiry is S3's to enforce (and the folder backend's, whose
    // test checks it).
}

/// S3 only (the folder backend's upload links are served by the web tier, whose tests use them):
/// a presigned PUT stores the object with a plain HTTP client, and its length is signed.
#[tokio::test]
async fn s3_presigned_put_uploads_with_a_plain_http_client_and_signs_the_length() {
    let Backend::S3 { store, .. } = Backend::s3().await else { unreachable!() };
    let k = key("uploads/direct.mp4");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let put = store.presign_put(&k, data.len() as u64, Duration::from_secs(60)).await.unwrap();
    let signed = put.url.split(['?', '&']).find_map(|p| p.strip_prefix("X-Amz-SignedHeaders=")).unwrap_or_default();
    // S3 itself refuses a body of another length, because the length is part of the signature;
    // moto does not check signatures, so what this test can check is that the length is signed.
    assert!(signed.split("%3B").any(|h| h == "content-length"), "signed headers: {signed}");
    assert!(put.headers.contains(&("content-length".to_string(), data.len().to_string())), "{:?}", put.headers);
    let mut request = reqwest::Client::new().put(&put.url).body(data.clone());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let reader = store.open(&k).await.unwrap();
    assert_eq!(reader.size(), data.len() as u64);
    assert_eq!(reader.read_at(0, data.len()).await.unwrap(), Bytes::from(data));
}

async fn a_create_only_put_never_replaces_and_the_loser_leaves_nothing(backend: Backend) {
    let store = backend.store();
    // Small (one PUT) and multipart (S3 parts of 5 MiB) alike.
    for (name, size) in [("uploads/small.mp4", 1000), ("uploads/large.mp4", 12 << 20)] {
        let k = key(name);
        let (first, body_a) = body(size, 1);
        assert_eq!(store.put_stream_new(&k, body_a).await.unwrap(), size as u64);
        let (_, body_b) = body(size, 2);
        let err = store.put_stream_new(&k, body_b).await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists(_)), "{err:?}");
        assert_eq!(err.code(), anb_core::ErrorCode::AlreadyExists);
        let reader = store.open(&k).await.unwrap();
        assert_eq!(reader.read_at(0, size).await.unwrap(), first, "the first write stays");
        // Once removed, the name may be written again.
        store.delete(&k).await.unwrap();
        let (_, body_c) = body(size, 3);
        store.put_stream_new(&k, body_c).await.unwrap();
    }
    assert_eq!(backend.leftovers().await, 2, "the two objects; no temporary files or unfinished uploads");
}
