//! `anb worker`: the queue consumer alone, as the ECS worker service runs it; and what `anb
//! serve` shares with it (the pipeline, the backends, the worker).

use std::sync::Arc;

use anb_core::backends::Backends;
use anb_core::blob::UrlSigner;
use anb_core::Settings;
use anb_pipeline::BuildContext;
use anb_worker::protection::ScaleInProtection;
use anb_worker::telemetry::WorkerMetrics;
use anb_worker::{JobContext, Worker, WorkerOptions};

use crate::cli::settings;
use crate::exit::{Exit, Outcome};
use crate::pipeline_file;
use crate::web::shutdown_signal;

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// The pipeline file for these settings, or every problem of a bad one.
pub fn load_pipeline(settings: &Settings) -> Result<pipeline_file::Loaded, Exit> {
    let options = WorkerOptions::from_settings(settings);
    let explicit = Some(&settings.pipeline).filter(|p| p.exists()).map(|p| p.as_path());
    pipeline_file::load(explicit, &BuildContext::with_threads(options.threads_per_job))
        .map_err(|e| Exit::Config(e.to_string()))
}

/// The backends, with S3 sized by the pipeline's `download` and `upload` stages.
pub async fn connect(settings: &Settings, secret: &str, loaded: &pipeline_file::Loaded) -> anyhow::Result<Backends> {
    let pipeline = &loaded.pipeline;
    let s3 = anb_worker::adapters::s3_options(pipeline.source_options(), pipeline.sink_options());
    Ok(Backends::connect_with(settings, signer(settings, secret), s3).await?)
}

pub fn worker(
    settings: &Settings,
    loaded: pipeline_file::Loaded,
    backends: Backends,
    metrics: Arc<WorkerMetrics>,
) -> Worker {
    let options = WorkerOptions::from_settings(settings);
    tracing::info!(pipeline = %loaded.source_name, concurrency = options.concurrency, threads_per_job = options.threads_per_job, "worker ready");
    let ctx = JobContext { backends, pipeline: loaded.pipeline, options, metrics };
    Worker::new(ctx, ScaleInProtection::from_env())
}

/// A signer for the folder backend's URLs (with the key the web checks them with).
pub fn signer(settings: &Settings, secret: &str) -> UrlSigner {
    crate::web::link_signer(settings, secret)
}

pub fn run() -> Outcome {
    let settings = settings()?;
    let loaded = load_pipeline(&settings)?;
    runtime()?.block_on(async {
        let secret = settings.secret_key.clone().unwrap_or_default();
        let backends = connect(&settings, &secret, &loaded).await?;
        let worker = worker(&settings, loaded, backends, Arc::new(WorkerMetrics::new()));
        let summary = worker.run(shutdown_signal()).await;
        tracing::info!(jobs = summary.outcomes.len(), "worker stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}
