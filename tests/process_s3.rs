//! `anb process s3://... s3://...` against moto: the worker's storage path from the command line.

mod support;

use std::path::Path;
use std::sync::Arc;

use anb_core::blob::{BlobKey, BlobStore, S3Options, S3Store};
use futures_util::StreamExt;
use support::*;

/// A bucket in moto, with a runtime to drive the SDK from these synchronous tests.
struct Bucket {
    rt: tokio::runtime::Runtime,
    store: Arc<S3Store>,
}

impl Bucket {
    fn new() -> Bucket {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = rt.block_on(async {
            let config = anb_core::testing::aws_config().await;
            // The store's prefix is `clips`, so objects live under s3://BUCKET/clips/...
            anb_core::testing::s3_store(&config, S3Options::default()).await
        });
        Bucket { rt, store: Arc::new(store) }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/clips/{key}", self.store.bucket())
    }

    fn upload(&self, key: &str, file: &Path) {
        let data = bytes::Bytes::from(std::fs::read(file).unwrap());
        let body = futures_util::stream::iter([Ok(data)]).boxed();
        self.rt.block_on(self.store.put_stream(&BlobKey::new(key).unwrap(), body)).unwrap();
    }

    fn download(&self, key: &str, file: &Path) {
        let data = self.rt.block_on(async {
            let reader = self.store.open(&BlobKey::new(key).unwrap()).await.unwrap();
            reader.read_at(0, reader.size() as usize).await.unwrap()
        });
        std::fs::write(file, data).unwrap();
    }

    fn exists(&self, key: &str) -> bool {
        self.rt.block_on(self.store.exists(&BlobKey::new(key).unwrap())).unwrap()
    }
}

const SHORT_PIPELINE: &str = include_str!("pipelines/ranged-s3.toml");

#[test]
fn s3_in_s3_out_reads_only_what_the_output_needs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    // Noise makes the clip large enough (a few MB) for block-sized reads to show the fraction.
    generate(&input, &Clip { secs: 40, width: 320, height: 240, pattern: "snow", ..Clip::default() });
    let bucket = Bucket::new();
    bucket.upload("uploads/in.mp4", &input);
    let pipeline = pipeline_file(dir.path(), "pipeline.toml", SHORT_PIPELINE);

    let (exit, stdout, stderr) = anb(
        &[
            "process",
            &bucket.url("uploads/in.mp4"),
            &bucket.url("processed/out.mp4"),
            "--json",
            "--pipeline",
            pipeline.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(exit, 0, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let size = std::fs::metadata(&input).unwrap().len();
    let fetched = json["s3_bytes_fetched"].as_u64().expect("the S3 fetch count is reported");
    assert!(fetched >= json["bytes_read"].as_u64().unwrap(), "{json}");
    assert!(fetched < size / 3, "fetched {fetched} of {size} bytes for 6 of 40 s");

    let output = dir.path().join("out.mp4");
    bucket.download("processed/out.mp4", &output);
    let p = probe(&output);
    assert_eq!(p.video()["codec_name"], "h264");
    assert_eq!((p.video()["width"].as_u64(), p.video()["height"].as_u64()), (Some(320), Some(180)));
    assert!((p.format_duration() - 6.0).abs() < 0.3, "{} s", p.format_duration());
    assert_eq!(json["bytes_written"].as_u64(), Some(std::fs::metadata(&output).unwrap().len()));
}

#[test]
fn a_missing_object_is_a_source_failure_and_nothing_is_written() {
    let bucket = Bucket::new();
    let (exit, stdout, stderr) =
        anb(&["process", &bucket.url("uploads/none.mp4"), &bucket.url("processed/none.mp4"), "--json"], &[]);
    assert_eq!(exit, 1, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "source-failed", "{json}");
    assert!(json["error"]["message"].as_str().unwrap().contains("no object"), "{json}");
    assert!(!bucket.exists("processed/none.mp4"));
}

#[test]
fn a_non_video_object_fails_as_invalid_input_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "these are not the frames you are looking for\n".repeat(2000)).unwrap();
    let bucket = Bucket::new();
    bucket.upload("uploads/notes.mp4", &text);
    let (exit, stdout, _) =
        anb(&["process", &bucket.url("uploads/notes.mp4"), &bucket.url("processed/notes.mp4"), "--json"], &[]);
    assert_eq!(exit, 3);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "invalid-input", "{json}");
    assert!(!bucket.exists("processed/notes.mp4"), "an aborted output leaves no object");
}
