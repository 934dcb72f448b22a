//! `anb serve` as `make run` starts it, in a folder of the test's own, on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `anb serve`, killed when dropped.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline quick enough for a debug build: 3 s at 320x180, watermark, poster, ultrafast.
pub const QUICK_PIPELINE: &str = include_str!("../pipelines/quick.toml");

/// Start `anb serve` in `dir` (its data/ goes there) with one job at a time.
pub fn start(dir: &Path, pipeline: &Path) -> Serve {
    let port = super::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_anb"))
        .arg("serve")
        .current_dir(dir)
        .env("ANB_LISTEN", format!("127.0.0.1:{port}"))
        .env("ANB_PIPELINE", pipeline)
        .env("ANB_WORKER_CONCURRENCY", "1")
        .env_remove("ANB_SECRET_KEY")
        .env_remove("ANB_PUBLIC_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Serve { child, base: format!("http://127.0.0.1:{port}") }
}

impl Serve {
    /// Wait until `/health` answers (a minute at most).
    pub async fn ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{}/health", self.base)).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "anb serve did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
