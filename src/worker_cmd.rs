//! `anb worker` (the queue consumer alone, as the ECS worker service runs it), `anb serve` (web
//! and worker in one process on embedded defaults) and `anb dlq redrive`.

use std::process::ExitCode;
use std::sync::Arc;

use anb_core::backends::Backends;
use anb_core::blob::UrlSigner;
use anb_core::queue::redrive;
use anb_core::Settings;
use anb_pipeline::BuildContext;
use anb_worker::protection::ScaleInProtection;
use anb_worker::telemetry::WorkerMetrics;
use anb_worker::{JobContext, Worker, WorkerOptions};
use tokio::sync::watch;

use crate::cli::{settings, EXIT_CONFIG};
use crate::pipeline_file;
use crate::web::shutdown_signal;

/// Where `anb serve` keeps the signing key it makes up (mode 0600).
const SERVE_SECRET_FILE: &str = "data/secret_key";

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// The pipeline file for these settings, or the exit code of a bad one.
fn load_pipeline(settings: &Settings) -> Result<pipeline_file::Loaded, ExitCode> {
    let options = WorkerOptions::from_settings(settings);
    let explicit = Some(&settings.pipeline).filter(|p| p.exists()).map(|p| p.as_path());
    pipeline_file::load(explicit, &BuildContext::with_threads(options.threads_per_job)).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The backends, with S3 sized by the pipeline's `download` and `upload` stages.
async fn connect(settings: &Settings, secret: &str, loaded: &pipeline_file::Loaded) -> anyhow::Result<Backends> {
    let pipeline = &loaded.pipeline;
    let s3 = anb_worker::adapters::s3_options(pipeline.source_options(), pipeline.sink_options());
    Ok(Backends::connect_with(settings, signer(settings, secret), s3).await?)
}

fn worker(settings: &Settings, loaded: pipeline_file::Loaded, backends: Backends, metrics: Arc<WorkerMetrics>) -> Worker {
    let options = WorkerOptions::from_settings(settings);
    tracing::info!(pipeline = %loaded.source_name, concurrency = options.concurrency, threads_per_job = options.threads_per_job, "worker ready");
    let ctx = JobContext { backends, pipeline: loaded.pipeline, options, metrics };
    Worker::new(ctx, ScaleInProtection::from_env())
}

/// A signer for the folder backend's URLs (with the key the web checks them with).
fn signer(settings: &Settings, secret: &str) -> UrlSigner {
    crate::web::link_signer(settings, secret)
}

pub fn run_worker() -> anyhow::Result<ExitCode> {
    let settings = match settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let loaded = match load_pipeline(&settings) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async {
        let secret = settings.secret_key.clone().unwrap_or_default();
        let backends = connect(&settings, &secret, &loaded).await?;
        let worker = worker(&settings, loaded, backends, Arc::new(WorkerMetrics::new()));
        let summary = worker.run(shutdown_signal()).await;
        tracing::info!(jobs = summary.outcomes.len(), "worker stopped");
        Ok(ExitCode::SUCCESS)
    })
}

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

pub fn run_serve() -> anyhow::Result<ExitCode> {
    let settings = match settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some(Err(problem)) = settings.secret_key.as_deref().map(anb_core::keys::check_secret) {
        eprintln!("{problem}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let secret = serve_secret(&settings)?;
    let loaded = match load_pipeline(&settings) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
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
        let web = crate::web::serve_web_with(&settings, secret, backends, Some(metrics), limits, stopped(stop_rx.clone()));
        let work = worker.run(stopped(stop_rx));
        let (web, summary) = tokio::join!(web, work);
        tracing::info!(jobs = summary.outcomes.len(), "worker stopped");
        web
    })
}

pub fn run_redrive() -> anyhow::Result<ExitCode> {
    let settings = match settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async {
        let secret = settings.secret_key.clone().unwrap_or_default();
        let backends = Backends::connect(&settings, signer(&settings, &secret)).await?;
        let Some(dead) = backends.dead_letters.clone() else {
            eprintln!("ANB_DLQ_URL: no dead-letter queue is configured");
            return Ok(ExitCode::from(EXIT_CONFIG));
        };
        let moved = redrive(dead.as_ref(), backends.queue.as_ref(), usize::MAX).await?;
        println!("moved {moved} message(s) from the dead-letter queue back to the queue");
        Ok(ExitCode::SUCCESS)
    })
}
