//! The worker end to end: a real database, a folder blob store, the embedded queue and real
//! GStreamer on generated clips. Faults are real too: a storage path that cannot be written.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anb_core::backends::Backends;
use anb_core::blob::{BlobKey, BlobStore, FolderStore, UrlSigner};
use anb_core::db::Db;
use anb_core::model::{NewUser, NewVideo, Video, VideoStatus};
use anb_core::queue::{redrive, EmbeddedQueue, JobQueue, MAX_RECEIVES};
use anb_core::store::{SqlStore, Store};
use anb_pipeline::{BuildContext, Pipeline};
use anb_worker::protection::ScaleInProtection;
use anb_worker::telemetry::WorkerMetrics;
use anb_worker::{JobContext, Outcome, Worker, WorkerOptions};
use uuid::Uuid;

/// A pipeline whose job is still running seconds after it starts.
const SLOW_PIPELINE: &str = include_str!("../../tests/pipelines/slow.toml");

/// A small, quick pipeline: the first 2 s, scaled down, encoded fast.
const PIPELINE: &str = r#"
[[stage]]
type = "trim"
max_duration_secs = 2

[[stage]]
type = "resize"
width = 160
height = 90

[[stage]]
type = "encode"
preset = "ultrafast"
"#;

struct Rig {
    dir: tempfile::TempDir,
    backends: Backends,
    user: Uuid,
}

impl Rig {
    async fn new(db: Db) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::new(db.clone(), "jobs").with_dead_letter("jobs-dead", MAX_RECEIVES);
        let dead: Arc<dyn JobQueue> = Arc::new(queue.dead_letter_queue().unwrap());
        let store: Arc<dyn Store> = Arc::new(SqlStore::new(db.clone()));
        let blobs: Arc<dyn BlobStore> = Arc::new(FolderStore::new(dir.path().join("blobs"), UrlSigner::new("k", "http://x/files")));
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
        let backends = Backends { db, store, blobs, queue: Arc::new(queue), dead_letters: Some(dead) };
        Rig { dir, backends, user }
    }

    fn worker(&self, options: WorkerOptions) -> Worker {
        self.worker_with(options, PIPELINE)
    }

    fn worker_with(&self, options: WorkerOptions, pipeline: &str) -> Worker {
        self.worker_protected(options, pipeline, ScaleInProtection::new(None))
    }

    fn worker_protected(&self, options: WorkerOptions, pipeline: &str, protection: ScaleInProtection) -> Worker {
        let pipeline = Pipeline::load(pipeline, "test.toml", &anb_stages::registry(), &[], &BuildContext::default()).unwrap();
        let ctx = JobContext {
            backends: self.backends.clone(),
            pipeline: Arc::new(pipeline),
            options,
            metrics: Arc::new(WorkerMetrics::with_emf(false)),
        };
        Worker::new(ctx, protection)
    }

    /// Store `file` as an upload, insert its row and enqueue its job, as the web does.
    async fn upload(&self, file: &Path) -> Uuid {
        let id = Uuid::new_v4();
        let key = format!("uploads/{id}.mp4");
        let data = bytes::Bytes::from(std::fs::read(file).unwrap());
        let size = data.len() as i64;
        self.backends.blobs.put_stream(&BlobKey::new(&key).unwrap(), Box::pin(futures_util::stream::iter([Ok(data)]))).await.unwrap();
        let new = NewVideo { id, user_id: self.user, title: "clip".into(), description: None, original_key: key, original_size: Some(size) };
        self.backends.store.create_video(new).await.unwrap();
        self.enqueue(id).await;
        id
    }

    async fn enqueue(&self, id: Uuid) {
        self.backends.queue.send(&serde_json::json!({ "video_id": id }).to_string()).await.unwrap();
    }

    async fn video(&self, id: Uuid) -> Video {
        self.backends.store.video(id).await.unwrap().unwrap()
    }
}

fn options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 2,
        threads_per_job: 1,
        visibility: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(30),
        max_receives: MAX_RECEIVES,
        retry_backoff: Duration::ZERO,
    }
}

fn clip(dir: &Path, name: &str, secs: u32, size: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let (w, h) = size.split_once('x').unwrap();
    let desc = format!(
        "videotestsrc num-buffers={} ! video/x-raw,format=I420,width={w},height={h},framerate=10/1 \
         ! x264enc speed-preset=ultrafast key-int-max=20 ! h264parse ! mp4mux ! filesink location={}",
        secs * 10,
        path.display()
    );
    let ok = std::process::Command::new("gst-launch-1.0").arg("-q").args(desc.split_whitespace()).status().unwrap().success();
    assert!(ok, "gst-launch-1.0 made the clip");
    path
}

anb_core::on_both_databases!(
    uploads_are_processed_and_duplicates_unknowns_and_bad_inputs_are_settled_once,
    a_transient_failure_is_retried_then_dead_lettered_and_redrive_finishes_it,
    shutdown_hands_a_running_job_back_at_once,
    the_lease_is_extended_while_the_job_progresses_and_slots_bound_the_receives,
    a_pipeline_that_stops_making_progress_is_aborted_retried_then_dead_lettered,
    a_busy_task_asks_the_ecs_agent_for_scale_in_protection_and_releases_it_when_idle,
);

/// A loopback stand-in for the ECS agent's task-protection endpoint: answers 200 to every
/// request and keeps each request's method, path and JSON body.
async fn fake_ecs_agent() -> (String, Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                            .unwrap_or(0);
                        if body.len() >= length {
                            let mut first = head.lines().next().unwrap_or_default().split_whitespace();
                            let (method, path) = (first.next().unwrap_or_default().to_string(), first.next().unwrap_or_default().to_string());
                            record.lock().unwrap().push((method, path, serde_json::from_str(body).unwrap_or_default()));
                            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (base, seen)
}

/// A pipeline that stops making progress.
const STALLING_PIPELINE: &str = include_str!("../../tests/pipelines/stalling.toml");

/// Run the worker until `stop` says so (bounded), then shut it down.
async fn run_until<F, Fut>(worker: &Worker, stop: F) -> Vec<Outcome>
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

async fn uploads_are_processed_and_duplicates_unknowns_and_bad_inputs_are_settled_once(db: Db) {
    let rig = Rig::new(db).await;
    let good = rig.upload(&clip(rig.dir.path(), "good.mp4", 4, "320x240")).await;
    std::fs::write(rig.dir.path().join("notes.mp4"), "not a video at all\n".repeat(500)).unwrap();
    let bad = rig.upload(&rig.dir.path().join("notes.mp4")).await;
    rig.enqueue(good).await; // a duplicate delivery
    rig.enqueue(Uuid::new_v4()).await; // a video that does not exist
    rig.backends.queue.send("{not json").await.unwrap();

    let queue = rig.backends.queue.clone();
    let worker = rig.worker(options());
    let outcomes = run_until(&worker, || {
        let queue = queue.clone();
        async move { queue.depth().await.map(|d| d.visible + d.in_flight == 0).unwrap_or(false) }
    })
    .await;

    let done = rig.video(good).await;
    assert_eq!((done.status, done.attempts, done.progress), (VideoStatus::Completed, 1, 1.0), "processed once: {done:?}");
    assert_eq!(done.processed_key.as_deref(), Some(format!("processed/{good}.mp4").as_str()));
    let output = rig.backends.blobs.open(&BlobKey::new(format!("processed/{good}.mp4")).unwrap()).await.unwrap();
    assert_eq!(&output.read_at(4, 4).await.unwrap()[..], b"ftyp");

    let failed = rig.video(bad).await;
    assert_eq!((failed.status, failed.error_code.as_deref(), failed.attempts), (VideoStatus::Failed, Some("invalid-input"), 1));
    assert!(!failed.error_retryable);
    assert!(!rig.backends.blobs.exists(&BlobKey::new(format!("processed/{bad}.mp4")).unwrap()).await.unwrap());

    let count = |o: &Outcome| outcomes.iter().filter(|x| *x == o).count();
    assert_eq!(count(&Outcome::Completed), 1, "{outcomes:?}");
    assert_eq!(count(&Outcome::Failed("invalid-input".into())), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::Skipped(_))).count(), 3, "duplicate, unknown, malformed: {outcomes:?}");
    assert_eq!(outcomes.len(), 5);
}

async fn a_transient_failure_is_retried_then_dead_lettered_and_redrive_finishes_it(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // A real storage fault: `processed` is a file, so no output can be written under it.
    let blocker = rig.dir.path().join("blobs/processed");
    std::fs::write(&blocker, "in the way").unwrap();

    let dead = rig.backends.dead_letters.clone().unwrap();
    let worker = rig.worker(options());
    let outcomes = run_until(&worker, || {
        let dead = dead.clone();
        async move { dead.depth().await.map(|d| d.visible == 1).unwrap_or(false) }
    })
    .await;
    assert_eq!(outcomes.len(), MAX_RECEIVES as usize, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o == &Outcome::Retry("sink-failed".into())), "{outcomes:?}");
    let failed = rig.video(id).await;
    assert_eq!((failed.status, failed.error_code.as_deref()), (VideoStatus::Failed, Some("sink-failed")));
    assert!(failed.error_retryable, "a transient failure may be redriven");
    assert_eq!(failed.attempts, MAX_RECEIVES as i32);

    // The fault is fixed; an operator redrives the dead letters; the job completes.
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(redrive(dead.as_ref(), rig.backends.queue.as_ref(), 10).await.unwrap(), 1);
    let worker = rig.worker(options());
    let store = rig.backends.store.clone();
    run_until(&worker, || {
        let store = store.clone();
        async move { store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed }
    })
    .await;
    assert_eq!(rig.video(id).await.attempts, MAX_RECEIVES as i32 + 1);
}

async fn shutdown_hands_a_running_job_back_at_once(db: Db) {
    let rig = Rig::new(db).await;
    // Long enough to still be running when the worker is told to stop.
    let id = rig.upload(&clip(rig.dir.path(), "long.mp4", 60, "320x240")).await;
    let options = WorkerOptions { shutdown_grace: Duration::ZERO, ..options() };
    let worker = rig.worker_with(options, SLOW_PIPELINE);
    let store = rig.backends.store.clone();
    let outcomes = run_until(&worker, || {
        let store = store.clone();
        async move { store.video(id).await.unwrap().unwrap().status == VideoStatus::Processing }
    })
    .await;
    assert_eq!(outcomes, vec![Outcome::Released]);
    let video = rig.video(id).await;
    assert_eq!((video.status, video.error_code.as_deref()), (VideoStatus::Pending, Some("worker-shutdown")));
    let depth = rig.backends.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 0), "visible again at once, not after the lease");
    assert!(!rig.backends.blobs.exists(&BlobKey::new(format!("processed/{id}.mp4")).unwrap()).await.unwrap());
}

async fn the_lease_is_extended_while_the_job_progresses_and_slots_bound_the_receives(db: Db) {
    let rig = Rig::new(db).await;
    let first = rig.upload(&clip(rig.dir.path(), "a.mp4", 60, "320x240")).await;
    let others = [rig.upload(&clip(rig.dir.path(), "b.mp4", 3, "160x120")).await, rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await];
    // One slot and a 2-second lease: the first job outlives its lease many times over unless
    // the heartbeat extends it, and the other two must wait in the queue, not in this worker.
    let options = WorkerOptions { concurrency: 1, visibility: Duration::from_secs(2), ..options() };
    let worker = rig.worker_with(options, SLOW_PIPELINE);
    let (queue, store) = (rig.backends.queue.clone(), rig.backends.store.clone());
    let max_in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let (queue, max_in_flight) = (queue.clone(), max_in_flight.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(d) = queue.depth().await {
                    max_in_flight.fetch_max(d.in_flight, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let outcomes = run_until(&worker, || {
        let store = store.clone();
        async move {
            let mut all = true;
            for id in [first, others[0], others[1]] {
                all &= store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed;
            }
            all
        }
    })
    .await;
    watcher.abort();
    assert_eq!(outcomes, vec![Outcome::Completed; 3]);
    for id in [first, others[0], others[1]] {
        assert_eq!(rig.video(id).await.attempts, 1, "each processed once: the lease never lapsed");
    }
    let long = rig.video(first).await;
    let took = long.processed_at.unwrap() - long.uploaded_at;
    assert!(took > time::Duration::seconds(3), "the first job must outlive its 2 s lease for this test to mean anything: {took}");
    assert_eq!(max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 1, "never more messages than slots");
}

async fn a_pipeline_that_stops_making_progress_is_aborted_retried_then_dead_lettered(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    let options = WorkerOptions { stall_timeout: Duration::from_secs(2), ..options() };
    let worker = rig.worker_with(options, STALLING_PIPELINE);
    let dead = rig.backends.dead_letters.clone().unwrap();
    let outcomes = run_until(&worker, || {
        let dead = dead.clone();
        async move { dead.depth().await.map(|d| d.visible == 1).unwrap_or(false) }
    })
    .await;
    assert_eq!(outcomes, vec![Outcome::Retry("pipeline-stalled".into()); MAX_RECEIVES as usize]);
    let video = rig.video(id).await;
    assert_eq!((video.status, video.error_code.as_deref()), (VideoStatus::Failed, Some("pipeline-stalled")));
    assert_eq!(video.attempts, MAX_RECEIVES as i32);
    assert!(!rig.backends.blobs.exists(&BlobKey::new(format!("processed/{id}.mp4")).unwrap()).await.unwrap());
}

async fn a_busy_task_asks_the_ecs_agent_for_scale_in_protection_and_releases_it_when_idle(db: Db) {
    let rig = Rig::new(db).await;
    let (agent, seen) = fake_ecs_agent().await;
    let protection = ScaleInProtection::new(Some(format!("{agent}/task-protection/v1/state")));
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    let worker = rig.worker_protected(options(), PIPELINE, protection);
    let store = rig.backends.store.clone();
    let seen_by_stop = seen.clone();
    let outcomes = run_until(&worker, || {
        let (store, seen) = (store.clone(), seen_by_stop.clone());
        async move {
            store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed && seen.lock().unwrap().len() >= 2
        }
    })
    .await;
    assert_eq!(outcomes, vec![Outcome::Completed]);
    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(&str, &str, serde_json::Value)> = seen.iter().map(|(m, p, b)| (m.as_str(), p.as_str(), b.clone())).collect();
    assert_eq!(
        calls,
        vec![
            ("PUT", "/task-protection/v1/state", serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": 60})),
            ("PUT", "/task-protection/v1/state", serde_json::json!({"ProtectionEnabled": false})),
        ],
        "protected while the job ran, released when idle"
    );
}
