//! `anb serve`: web and worker in one process on embedded defaults, as `make run` starts it.

use std::sync::Arc;

use anb_core::Settings;
use anb_worker::telemetry::WorkerMetrics;
use tokio::sync::watch;

use crate::cli::settings;
use crate::exit::{Exit, Outcome};
use crate::web::shutdown_signal;
use crate::worker::{connect, load_pipeline, runtime, worker};

/// Where `anb serve` keeps the signing key it makes up (mode 0600).
const SERVE_SECRET_FILE: &str = "data/secret_key";

/// The key `anb serve` signs with: ANB_SECRET_KEY, or one made once and kept in `data/`.
fn serve_secret(settings: &Settings) -> std::io::Result<String> {
    if let Some(key) = &settings.secret_key {
        return Ok(key.clone());
    }
    let path = std::path::Path::new(SERVE_SECRET_FILE);
    if let Ok(key) = std::fs::read_to_string(path) {
        if !key.trim().is_empty() {
            return Ok(key.trim().to_string());
        }
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(path.parent().expect("a folder"))?;
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(key.as_bytes())?;
    Ok(key)
}

pub fn run() -> Outcome {
    let settings = settings()?;
    if let Some(key) = settings.secret_key.as_deref() {
        anb_core::keys::check_secret(key).map_err(Exit::Config)?;
    }
    let secret = serve_secret(&settings)?;
    let loaded = load_pipeline(&settings)?;
    let loaded_limits = loaded.pipeline.input_limits();
    runtime()?.block_on(async {
        let backends = connect(&settings, &secret, &loaded).await?;
        let metrics = Arc::new(WorkerMetrics::new());
        let worker = worker(&settings, loaded, backends.clone(), metrics.clone());
        // One signal stops both halves.
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let limits = loaded_limits.clone();
        let web =
            crate::web::serve_web_with(&settings, secret, backends, Some(metrics), limits, stopped(stop_rx.clone()));
        let work = worker.run(stopped(stop_rx));
        let (web, summary) = tokio::join!(web, work);
        tracing::info!(jobs = summary.outcomes.len(), "worker stopped");
        web
    })?;
    Ok(())
}
