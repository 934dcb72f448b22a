//! `anb web`: the HTTP API alone (production: one ECS service behind the load balancer).

use anb_core::backends::Backends;
use anb_core::blob::UrlSigner;
use anb_pipeline::InputLimits;
use std::sync::Arc;
use std::time::Duration;

use anb_web::{AppState, WebOptions};
use anb_worker::telemetry::WorkerMetrics;

use crate::cli::settings;
use crate::exit::{Exit, Outcome};

pub fn run() -> Outcome {
    let settings = settings()?;
    let secret = match settings.secret_key.clone() {
        Some(key) => {
            anb_core::keys::check_secret(&key).map_err(Exit::Config)?;
            key
        }
        None => {
            return Err(Exit::Config("ANB_SECRET_KEY: required by `anb web` (only `anb serve` makes one up)".into()))
        }
    };
    // The web publishes the limits of the pipeline the workers run (the same file and
    // variables), read without building the pipeline.
    let explicit = Some(&settings.pipeline).filter(|p| p.exists()).map(|p| p.as_path());
    let limits = crate::pipeline_file::input_limits(explicit).map_err(|e| Exit::Config(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(rt.block_on(serve_web(settings, secret, limits))?)
}

pub async fn serve_web(settings: anb_core::Settings, secret: String, limits: InputLimits) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings, link_signer(&settings, &secret)).await?;
    serve_web_with(&settings, secret, backends, None, limits, shutdown_signal()).await
}

/// Serve the API over `backends` until `shutdown`; `worker_metrics` joins `/metrics` when the
/// worker runs in the same process.
pub async fn serve_web_with(
    settings: &anb_core::Settings,
    secret: String,
    backends: Backends,
    worker_metrics: Option<Arc<WorkerMetrics>>,
    input_limits: InputLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let signer = link_signer(settings, &secret);
    let options = WebOptions { input_limits, ..WebOptions::from_settings(settings, secret) };
    let mut state = AppState::new(backends, signer, &options);
    state.stuck_after = anb_web::stuck_after(Duration::from_secs(settings.visibility_timeout_secs));
    if let Some(metrics) = worker_metrics {
        state.extra_metrics = Some(Arc::new(move || metrics.render()));
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen).await?;
    tracing::info!(address = %settings.listen, "listening");
    anb_web::serve(listener, state, options.cors_origins.clone(), shutdown).await?;
    tracing::info!("web stopped");
    Ok(())
}

/// The signer of the folder backend's `/files` links, with the link key derived from the secret.
pub fn link_signer(settings: &anb_core::Settings, secret: &str) -> UrlSigner {
    UrlSigner::new(anb_core::keys::link_key(secret), format!("{}/files", settings.public_base_url()))
}

/// SIGINT or SIGTERM (what ECS sends before stopping a task).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
