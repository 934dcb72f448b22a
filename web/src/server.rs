//! Serving connections with the limits a public listener needs, which `axum::serve` does not
//! expose: a header-read timeout (a slowloris client holding connections open without ever
//! finishing a request is cut off), a body idle timeout (a body that stops sending ends the
//! request with 408, and the handler keeps nothing of it), and each connection's peer address
//! for the rate limits. Load shedding is in [`crate::router`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Connection limits, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// `ANB_HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout: Duration,
    /// `ANB_BODY_IDLE_TIMEOUT_SECS`.
    pub body_idle_timeout: Duration,
    /// `ANB_MAX_CONCURRENT_REQUESTS`.
    pub max_concurrent_requests: usize,
}

impl ServerOptions {
    pub fn from_settings(settings: &anb_core::Settings) -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
            body_idle_timeout: Duration::from_secs(settings.body_idle_timeout_secs),
            max_concurrent_requests: settings.max_concurrent_requests,
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::from_settings(&anb_core::Settings::default())
    }
}

/// How long requests in flight may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accept connections until `shutdown` resolves, then let requests in flight finish (for at
/// most [`SHUTDOWN_GRACE`]).
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also the longest a kept-alive connection may sit idle before its next request.
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(20)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = tower::ServiceBuilder::new()
            .layer(RequestBodyTimeoutLayer::new(options.body_idle_timeout))
            .service(app.clone())
            .map_request(move |mut request: axum::http::Request<_>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_within = options.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header timer starts with a request's first byte: a connection that never
            // sends one is closed here.
            match tokio::time::timeout(first_byte_within, stream.peek(&mut [0u8; 1])).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "Connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("Requests still running after the shutdown grace; closing them");
    }
    Ok(())
}
