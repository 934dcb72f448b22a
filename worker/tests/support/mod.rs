//! What the worker's tests share: a rig with a real database, a folder blob store and the
//! embedded queue (behind fault-injecting wrappers that pass everything through until a test
//! plans a fault), generated clips, and a bounded way to run a worker until something holds.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anb_core::backends::Backends;
use anb_core::blob::{BlobKey, BlobStore, FolderStore, UrlSigner};
use anb_core::db::Db;
use anb_core::faults::{Faults, FaultyQueue, FaultyStore};
use anb_core::model::{NewUser, NewVideo, Video, VideoStatus};
use anb_core::queue::{EmbeddedQueue, JobQueue, MAX_RECEIVES};
use anb_core::store::{SqlStore, Store};
use anb_core::ErrorCode;
use anb_pipeline::{BuildContext, Pipeline};
use anb_worker::protection::ScaleInProtection;
use anb_worker::telemetry::WorkerMetrics;
use anb_worker::{JobContext, Outcome, Worker, WorkerOptions, MAX_ATTEMPTS};
use uuid::Uuid;

/// A pipeline whose job is still running seconds after it starts.
pub const SLOW_PIPELINE: &str = include_str!("../../../tests/pipelines/slow.toml");

/// A small, quick pipeline: the first 2 s, scaled down, encoded fast.
pub const PIPELINE: &str = include_str!("../../../tests/pipelines/tiny.toml");

pub struct Rig {
    pub dir: tempfile::TempDir,
    /// What the worker uses: the real backends behind the fault wrappers.
    pub backends: Backends,
    /// The same backends without the wrappers, for the test's own setup and checks.
    pub real: Backends,
    /// The plan of faults for `backends.store` and `backends.queue`.
    pub faults: Arc<Faults>,
    pub user: Uuid,
}

impl Rig {
    pub async fn new(db: Db) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::new(db.clone(), "jobs").with_dead_letter("jobs-dead", MAX_RECEIVES);
        let dead: Arc<dyn JobQueue> = Arc::new(queue.dead_letter_queue().unwrap());
        let store: Arc<dyn Store> = Arc::new(SqlStore::new(db.clone()));
        let blobs: Arc<dyn BlobStore> =
            Arc::new(FolderStore::new(dir.path().join("blobs"), UrlSigner::new("k", "http://x/files")));
        let user = store
            .create_user(NewUser {
                email: "p@example.com".into(),
                password_hash: "x".into(),
                first_name: "P".into(),
                last_name: "Q".into(),
                city: "Cali".into(),
                country: "Colombia".into(),
            })
            .await
            .unwrap()
            .id;
        let real = Backends { db, store, blobs, queue: Arc::new(queue), dead_letters: Some(dead) };
        let faults = Faults::new();
        let backends = Backends {
            store: Arc::new(FaultyStore::new(real.store.clone(), faults.clone())),
            queue: Arc::new(FaultyQueue::new(real.queue.clone(), faults.clone())),
            ..real.clone()
        };
        Rig { dir, backends, real, faults, user }
    }

    pub fn worker(&self, options: WorkerOptions) -> Worker {
        self.worker_with(options, PIPELINE)
    }

    pub fn worker_with(&self, options: WorkerOptions, pipeline: &str) -> Worker {
        self.worker_protected(options, pipeline, ScaleInProtection::new(None))
    }

    pub fn worker_protected(&self, options: WorkerOptions, pipeline: &str, protection: ScaleInProtection) -> Worker {
        let pipeline =
            Pipeline::load(pipeline, "test.toml", &anb_stages::registry(), &[], &BuildContext::default()).unwrap();
        let ctx = JobContext {
            backends: self.backends.clone(),
            pipeline: Arc::new(pipeline),
            options,
            metrics: Arc::new(WorkerMetrics::with_emf(false)),
        };
        Worker::new(ctx, protection)
    }

    /// Store `file` as an upload, insert its row and enqueue its job, as the web does.
    pub async fn upload(&self, file: &Path) -> Uuid {
        let id = Uuid::new_v4();
        let key = format!("uploads/{id}.mp4");
        let data = bytes::Bytes::from(std::fs::read(file).unwrap());
        let size = data.len() as i64;
        self.real
            .blobs
            .put_stream(&BlobKey::new(&key).unwrap(), Box::pin(futures_util::stream::iter([Ok(data)])))
            .await
            .unwrap();
        let new = NewVideo {
            id,
            user_id: self.user,
            title: "clip".into(),
            description: None,
            original_key: key,
            original_size: Some(size),
        };
        self.real.store.create_video(new).await.unwrap();
        self.enqueue(id).await;
        id
    }

    pub async fn enqueue(&self, id: Uuid) {
        self.real.queue.send(&serde_json::json!({ "video_id": id }).to_string()).await.unwrap();
    }

    pub async fn video(&self, id: Uuid) -> Video {
        self.real.store.video(id).await.unwrap().unwrap()
    }
}

pub fn options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 2,
        threads_per_job: 1,
        visibility: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(30),
        max_attempts: MAX_ATTEMPTS,
        retry_backoff: Duration::ZERO,
    }
}

pub fn clip(dir: &Path, name: &str, secs: u32, size: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let (w, h) = size.split_once('x').unwrap();
    let desc = format!(
        "videotestsrc num-buffers={} ! video/x-raw,format=I420,width={w},height={h},framerate=10/1 \
         ! x264enc speed-preset=ultrafast key-int-max=20 ! h264parse ! mp4mux ! filesink location={}",
        secs * 10,
        path.display()
    );
    let ok = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .status()
        .unwrap()
        .success();
    assert!(ok, "gst-launch-1.0 made the clip");
    path
}

/// A pipeline that stops making progress.
pub const STALLING_PIPELINE: &str = include_str!("../../../tests/pipelines/stalling.toml");

/// Run the worker until `stop` says so (bounded), then shut it down.
pub async fn run_until<F, Fut>(worker: &Worker, stop: F) -> Vec<Outcome>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    let shutdown = async {
        while !stop().await {
            assert!(Instant::now() < deadline, "the worker did not get there in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    worker.run(shutdown).await.outcomes
}

/// What a job failing with `code` on every attempt yields: a retry for each attempt of the
/// budget but the last, which records the failure and dead-letters the message.
pub fn retried_then_dead_lettered(code: ErrorCode) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Retry(code); MAX_ATTEMPTS as usize - 1];
    outcomes.push(Outcome::DeadLettered(code));
    outcomes
}

impl Rig {
    /// Run `worker` until a message is in the dead-letter queue (bounded), then shut it down.
    pub async fn run_until_dead_lettered(&self, worker: &Worker) -> Vec<Outcome> {
        let dead = self.real.dead_letters.clone().expect("the rig has a dead-letter queue");
        run_until(worker, || {
            let dead = dead.clone();
            async move { dead.depth().await.map(|d| d.visible == 1).unwrap_or(false) }
        })
        .await
    }

    /// The processed outputs stored in the folder (file names under `processed/`).
    pub fn outputs(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.dir.path().join("blobs/processed")) else { return vec![] };
        let mut names: Vec<String> =
            dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Messages in the job queue and in the dead-letter queue (visible or not).
    pub async fn messages(&self) -> (u64, u64) {
        let live = self.real.queue.depth().await.unwrap();
        let dead = self.real.dead_letters.as_ref().unwrap().depth().await.unwrap();
        (live.visible + live.in_flight, dead.visible + dead.in_flight)
    }
}

/// Run a worker until the video is settled (`completed` or `failed`) and no message is left in
/// the job queue.
pub async fn run_to_the_end(rig: &Rig, worker: &anb_worker::Worker, id: uuid::Uuid) -> Vec<Outcome> {
    let (store, queue) = (rig.real.store.clone(), rig.real.queue.clone());
    run_until(worker, || {
        let (store, queue) = (store.clone(), queue.clone());
        async move {
            let status = store.video(id).await.unwrap().unwrap().status;
            let depth = queue.depth().await.unwrap();
            matches!(status, VideoStatus::Completed | VideoStatus::Failed) && depth.visible + depth.in_flight == 0
        }
    })
    .await
}

/// How many outcomes equal `o`.
pub fn count(outcomes: &[Outcome], o: &Outcome) -> usize {
    outcomes.iter().filter(|x| *x == o).count()
}
