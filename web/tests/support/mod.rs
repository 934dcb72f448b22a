//! The real router on a loopback port, over a real database and real storage.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::Arc;
use std::time::Duration;

use anb_core::backends::Backends;
use anb_core::blob::{BlobStore, FolderStore, S3Options, UrlSigner};
use anb_core::db::Db;
use anb_core::queue::{EmbeddedQueue, JobQueue, MAX_RECEIVES};
use anb_core::store::{SqlStore, Store};
use anb_web::{AppState, WebOptions};
use serde_json::{json, Value};

pub const SECRET: &str = "test-secret-key-0123456789";

pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The dead-letter queue beside the job queue, when there is one.
type DeadLetters = Option<Arc<dyn JobQueue>>;

pub enum Storage {
    Folder,
    /// S3 and SQS in moto.
    Aws,
}

impl App {
    pub async fn start(db: Db, storage: Storage, max_upload_bytes: u64) -> App {
        App::start_with(db, storage, |options| options.max_upload_bytes = max_upload_bytes, |_| {}).await
    }

    /// As [`App::start`], with the options and then the state adjusted before serving.
    pub async fn start_with(
        db: Db,
        storage: Storage,
        options: impl FnOnce(&mut WebOptions),
        state: impl FnOnce(&mut AppState),
    ) -> App {
        let configure_options = options;
        let configure_state = state;
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let signer = UrlSigner::new(SECRET, format!("{base}/files"));
        let (blobs, queue, dead_letters): (Arc<dyn BlobStore>, Arc<dyn JobQueue>, DeadLetters) = match storage {
            Storage::Folder => {
                let queue = EmbeddedQueue::new(db.clone(), "jobs").with_dead_letter("jobs-dead", MAX_RECEIVES);
                let dead = queue.dead_letter_queue().unwrap();
                (
                    Arc::new(FolderStore::new(dir.path().join("blobs"), signer.clone())),
                    Arc::new(queue),
                    Some(Arc::new(dead)),
                )
            }
            Storage::Aws => {
                let config = anb_core::testing::aws_config().await;
                let store = anb_core::testing::s3_store(&config, S3Options::default()).await;
                let (queue, dead) = anb_core::testing::sqs_queues(&config).await;
                (Arc::new(store), Arc::new(queue), Some(Arc::new(dead)))
            }
        };
        let store: Arc<dyn Store> = Arc::new(SqlStore::new(db.clone()));
        let backends = Backends { db, store, blobs, queue, dead_letters };
        let mut options = WebOptions {
            cors_origins: vec!["*".into()],
            ..WebOptions::from_settings(&anb_core::Settings::default(), SECRET.into())
        };
        configure_options(&mut options);
        let mut state = AppState::new(backends, signer, &options);
        configure_state(&mut state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(anb_web::serve(listener, state.clone(), vec!["*".to_string()], async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        App { base, http, state, _dir: dir, stop: Some(stop) }
    }

    /// Files under the folder store's root, temporary ones included.
    pub fn files_in_blob_dir(&self) -> usize {
        fn count(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { count(&p) } else { 1 }).sum()
            })
        }
        count(&self._dir.path().join("blobs"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        answer(self.http.delete(self.url(path)).bearer_auth(token).send().await.unwrap()).await
    }

    /// Sign up (first name `name`, city `city`) and log in; returns (user id, token).
    pub async fn player(&self, name: &str, city: &str) -> (String, String) {
        let email = format!("{}@example.com", name.to_lowercase());
        let (status, user) = self
            .post_json(
                "/api/auth/signup",
                &json!({"email": email, "password1": "s3cret-pass", "password2": "s3cret-pass",
                        "first_name": name, "last_name": "Player", "city": city, "country": "Colombia"}),
                None,
            )
            .await;
        assert_eq!(status, 201, "{user}");
        let (status, login) =
            self.post_json("/api/auth/login", &json!({"email": email, "password": "s3cret-pass"}), None).await;
        assert_eq!(status, 200, "{login}");
        (user["id"].as_str().unwrap().to_string(), login["access_token"].as_str().unwrap().to_string())
    }

    /// Upload `bytes` as `file` with a title; returns (status, body).
    pub async fn upload(&self, token: &str, bytes: Vec<u8>, title: Option<&str>) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name("clip.mp4").mime_str("video/mp4").unwrap());
        if let Some(title) = title {
            form = form.text("title", title.to_string());
        }
        answer(self.http.post(self.url("/api/videos/upload")).bearer_auth(token).multipart(form).send().await.unwrap())
            .await
    }
}

/// Check `holds` up to 100 times, 50 ms apart, and say whether it came to hold: work that
/// finishes after a response (a temporary file removed, a slot given back) is polled for its
/// outcome, never timed.
pub async fn settles<F, Fut>(mut holds: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if holds().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A direct upload's announcement (`POST /api/videos/uploads`).
pub async fn announce(app: &App, token: &str, size: usize, title: &str) -> Value {
    let (status, body) = app
        .post_json("/api/videos/uploads", &json!({"title": title, "size": size, "filename": "clip.mp4"}), Some(token))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// PUT `bytes` to an announced upload's URL with the headers it names; returns the status.
pub async fn put_file(http: &reqwest::Client, announced: &Value, bytes: Vec<u8>) -> u16 {
    let mut request = http.put(announced["upload_url"].as_str().unwrap()).body(bytes);
    for (name, value) in announced["upload_headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request.send().await.unwrap().status().as_u16()
}

pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Bytes that start like an MP4 (`ftyp`), then `len` bytes of payload.
pub fn mp4_bytes(len: usize) -> Vec<u8> {
    let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
    bytes.extend((0..len).map(|i| (i * 7 % 251) as u8));
    bytes
}
