//! The production shape end to end: `anb web` and `anb worker` processes on PostgreSQL, with S3
//! and SQS in moto, driven over HTTP like a client app. Workers are real processes, so one can
//! be killed with SIGKILL in the middle of a job.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anb_core::blob::S3Options;
use anb_core::queue::JobQueue;
use anb_core::testing::OwnMoto;
use serde_json::{json, Value};
use support::*;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One platform: a fresh database, bucket and queues; `anb web` on a free port; workers on demand.
struct Platform {
    env: HashMap<String, String>,
    base: String,
    http: reqwest::Client,
    processes: Processes,
    s3: aws_sdk_s3::Client,
    bucket: String,
    dlq: anb_core::queue::SqsQueue,
    queue: anb_core::queue::SqsQueue,
    store: anb_core::store::SqlStore,
    token: String,
}

impl Platform {
    async fn start(pipeline: &Path, visibility_secs: u32) -> Platform {
        Platform::start_with(pipeline, visibility_secs, None, &[]).await
    }

    /// `moto`: a moto of the test's own instead of the shared one; `extra`: more settings.
    async fn start_with(
        pipeline: &Path,
        visibility_secs: u32,
        moto: Option<&OwnMoto>,
        extra: &[(&str, &str)],
    ) -> Platform {
        let (db, db_url) = anb_core::testing::postgres().await;
        let config = match moto {
            Some(moto) => moto.aws_config(Duration::from_secs(15)).await,
            None => anb_core::testing::aws_config().await,
        };
        let blobs = anb_core::testing::s3_store(&config, S3Options::default()).await;
        let (queue, dlq) = anb_core::testing::sqs_queues(&config).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let env: HashMap<String, String> = [
            ("ANB_LISTEN", format!("127.0.0.1:{port}")),
            ("ANB_DATABASE_URL", db_url),
            ("ANB_STORAGE_URL", format!("s3://{}/clips", blobs.bucket())),
            ("ANB_QUEUE_URL", queue.url().to_string()),
            ("ANB_DLQ_URL", dlq.url().to_string()),
            ("ANB_SECRET_KEY", "e2e-secret-key-with-enough-length-0123".to_string()),
            ("ANB_PIPELINE", pipeline.display().to_string()),
            ("ANB_VISIBILITY_TIMEOUT_SECS", visibility_secs.to_string()),
            ("ANB_WORKER_CONCURRENCY", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .chain(moto.map(|m| ("AWS_ENDPOINT_URL".to_string(), m.url.clone())))
        .collect();
        let mut platform = Platform {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            processes: Processes(Vec::new()),
            s3: anb_core::blob::S3Store::client(&config),
            bucket: blobs.bucket().to_string(),
            store: anb_core::store::SqlStore::new(db),
            env,
            dlq,
            queue,
            token: String::new(),
        };
        platform.spawn("web");
        let deadline = Instant::now() + Duration::from_secs(60);
        while platform.http.get(platform.url("/health")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "anb web did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        platform.token = platform.login().await;
        platform
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Start `anb web` or `anb worker`; returns its index.
    fn spawn(&mut self, command: &str) -> usize {
        let child = Command::new(env!("CARGO_BIN_EXE_anb"))
            .arg(command)
            .envs(&self.env)
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.processes.0.push(child);
        self.processes.0.len() - 1
    }

    fn signal(&self, index: usize, signal: &str) {
        Command::new("kill").args([signal, &self.processes.0[index].id().to_string()]).status().unwrap();
    }

    /// Wait (bounded) for a process to exit; its status.
    async fn exited(&mut self, index: usize, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.processes.0[index].try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "process {index} did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self, index: usize) {
        let child = &mut self.processes.0[index];
        child.kill().unwrap(); // SIGKILL: no cleanup of any kind
        child.wait().unwrap();
    }

    async fn login(&self) -> String {
        let signup = json!({"email": "ana@example.com", "password1": "dunk-dunk-dunk", "password2": "dunk-dunk-dunk",
                            "first_name": "Ana", "last_name": "Ruiz", "city": "Cali", "country": "Colombia"});
        assert_eq!(self.http.post(self.url("/api/auth/signup")).json(&signup).send().await.unwrap().status(), 201);
        let credentials = json!({"email": "ana@example.com", "password": "dunk-dunk-dunk"});
        let login = json_of(self.http.post(self.url("/api/auth/login")).json(&credentials)).await;
        login["access_token"].as_str().unwrap().to_string()
    }

    /// Upload like a `requests` client: multipart `file`, `title`, `description`.
    async fn upload(&self, file: &Path) -> String {
        let form =
            reqwest::multipart::Form::new().text("title", "Game winner").text("description", "last second").part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(file).unwrap())
                    .file_name("clip.mp4")
                    .mime_str("video/mp4")
                    .unwrap(),
            );
        let response = self
            .http
            .post(self.url("/api/videos/upload"))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["video_id"].as_str().unwrap().to_string()
    }

    async fn detail(&self, id: &str) -> Value {
        self.http
            .get(self.url(&format!("/api/videos/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Poll until the video reaches `status` (bounded).
    async fn until_status(&self, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let detail = self.detail(id).await;
            if detail["status"] == status {
                return detail;
            }
            assert!(Instant::now() < deadline, "not {status} in time: {detail}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn attempts(&self, id: &str) -> i32 {
        use anb_core::store::Store;
        self.store.video(uuid::Uuid::parse_str(id).unwrap()).await.unwrap().unwrap().attempts
    }

    async fn processed_objects(&self) -> usize {
        let listing = self.s3.list_objects_v2().bucket(&self.bucket).prefix("clips/processed/").send().await.unwrap();
        listing.contents().len()
    }

    async fn queues_empty(&self) -> bool {
        let (live, dead) = (self.queue.depth().await.unwrap(), self.dlq.depth().await.unwrap());
        live.visible + live.in_flight + dead.visible + dead.in_flight == 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_becomes_the_showcase_output_and_a_duplicate_message_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 34, ..Clip::default() });
    let mut platform = Platform::start(&repo_root().join("pipeline.toml"), 60).await;
    platform.spawn("worker");
    let id = platform.upload(&input).await;
    let done = platform.until_status(&id, "completed", Duration::from_secs(240)).await;

    let output = dir.path().join("out.mp4");
    let bytes = reqwest::get(done["processed_url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    std::fs::write(&output, bytes).unwrap();
    let p = probe(&output);
    assert_eq!(p.video()["codec_name"], "h264");
    assert_eq!((p.video()["width"].as_u64(), p.video()["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(p.audio().expect("audio kept")["codec_name"], "aac");
    assert!(p.format_duration() <= 30.1, "{} s", p.format_duration());

    // The same job sent again: acknowledged without a second run.
    platform.queue.send(&json!({ "video_id": id }).to_string()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !platform.queues_empty().await {
        assert!(Instant::now() < deadline, "the duplicate was not consumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(platform.attempts(&id).await, 1, "processed once");
    assert_eq!(platform.processed_objects().await, 1);
}

/// A pipeline whose job is still running seconds after it starts.
const SLOW: &str = include_str!("pipelines/slow.toml");

/// A folder with a 60 s input and the slow pipeline: a job still running seconds after it starts.
fn slow_job() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 60, width: 320, height: 240, ..Clip::default() });
    let pipeline = pipeline_file(dir.path(), "slow.toml", SLOW);
    (dir, input, pipeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_replaced_and_the_job_finishes_once() {
    let (_dir, input, pipeline) = slow_job();
    let mut platform = Platform::start(&pipeline, 4).await;
    let first = platform.spawn("worker");
    let id = platform.upload(&input).await;
    platform.until_status(&id, "processing", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.kill(first);
    assert_eq!(platform.detail(&id).await["status"], "processing", "killed mid-job");

    platform.spawn("worker");
    platform.until_status(&id, "completed", Duration::from_secs(300)).await;
    assert_eq!(platform.attempts(&id).await, 2, "the second worker took over after the lease ran out");
    assert_eq!(platform.processed_objects().await, 1, "exactly one processed object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_upload_fails_once_with_invalid_input_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    // It starts like an MP4, so the upload is accepted; it is not one, so the worker refuses it.
    let corrupt = dir.path().join("corrupt.mp4");
    let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
    bytes.extend(std::iter::repeat_n(0x5a, 200_000));
    std::fs::write(&corrupt, bytes).unwrap();
    let mut platform = Platform::start(&repo_root().join("pipeline.toml"), 30).await;
    platform.spawn("worker");
    let id = platform.upload(&corrupt).await;
    let failed = platform.until_status(&id, "failed", Duration::from_secs(60)).await;
    assert_eq!(failed["error_code"], "invalid-input");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !platform.queues_empty().await {
        assert!(Instant::now() < deadline, "the message was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(platform.attempts(&id).await, 1, "no retry");
    assert!(platform.queues_empty().await, "nothing in the dead-letter queue");
    assert_eq!(platform.processed_objects().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_hands_the_message_back_at_once_and_nothing_is_lost() {
    let (_dir, input, pipeline) = slow_job();
    // A one-second grace for a job that needs far longer; a 60 s lease that must not be waited for.
    let mut platform = Platform::start_with(&pipeline, 60, None, &[("ANB_SHUTDOWN_GRACE_SECS", "1")]).await;
    let first = platform.spawn("worker");
    let id = platform.upload(&input).await;
    platform.until_status(&id, "processing", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.signal(first, "-TERM");
    let status = platform.exited(first, Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    let handed_back = platform.detail(&id).await;
    assert_eq!(
        (handed_back["status"].as_str(), handed_back["error_code"].as_str()),
        (Some("pending"), Some("worker-shutdown"))
    );
    let depth = platform.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 0), "visible again at once, not after the 60 s lease");

    platform.spawn("worker");
    platform.until_status(&id, "completed", Duration::from_secs(300)).await;
    assert_eq!(platform.attempts(&id).await, 2);
    assert_eq!(platform.processed_objects().await, 1);
}

/// As SLOW, reading the input in small blocks with little read-ahead, so S3 is read all
/// through the job (a small clip would otherwise be cached whole in the first second).
const SLOW_SMALL_READS: &str = concat!(
    r#"
[[stage]]
type = "download"
block_size_kib = 64
read_ahead_blocks = 1
cache_blocks = 4
"#,
    include_str!("pipelines/slow.toml")
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_frozen_for_ten_seconds_mid_job_then_a_later_attempt_completes_and_no_upload_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 60, width: 320, height: 240, ..Clip::default() });
    let pipeline = pipeline_file(dir.path(), "slow.toml", SLOW_SMALL_READS);
    let moto = OwnMoto::start();
    // Short AWS timeouts, so the frozen emulator fails the attempt instead of just pausing it.
    let mut platform = Platform::start_with(&pipeline, 20, Some(&moto), &[("ANB_AWS_TIMEOUT_SECS", "3")]).await;
    platform.spawn("worker");
    let id = platform.upload(&input).await;
    platform.until_status(&id, "processing", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    moto.freeze();
    tokio::time::sleep(Duration::from_secs(10)).await;
    moto.thaw();

    platform.until_status(&id, "completed", Duration::from_secs(300)).await;
    assert!(platform.attempts(&id).await >= 2, "the frozen attempt failed and a later one completed");
    assert_eq!(platform.processed_objects().await, 1);
    // The failed attempt's multipart upload is aborted (retried until S3 answers again).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let uploads = platform.s3.list_multipart_uploads().bucket(&platform.bucket).send().await.unwrap();
        if uploads.uploads().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "incomplete multipart uploads left: {:?}", uploads.uploads());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A pipeline that stops making progress.
const STALLING: &str = include_str!("pipelines/stalling.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_stops_making_progress_is_retried_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    generate(&input, &Clip { secs: 3, ..Clip::default() });
    let pipeline = pipeline_file(dir.path(), "stalling.toml", STALLING);
    let mut platform = Platform::start_with(&pipeline, 30, None, &[("ANB_STALL_TIMEOUT_SECS", "2")]).await;
    platform.spawn("worker");
    let id = platform.upload(&input).await;
    // Three attempts, each aborted after 2 s without progress, with the retry backoff between.
    let failed = platform.until_status(&id, "failed", Duration::from_secs(180)).await;
    assert_eq!(failed["error_code"], "pipeline-stalled");
    assert_eq!(platform.attempts(&id).await, 3);
    // The third attempt records the failure and moves the message to the dead-letter queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    while platform.dlq.depth().await.unwrap().visible != 1 {
        assert!(Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(platform.processed_objects().await, 0);
}
