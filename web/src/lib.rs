//! anb-web: the HTTP API of `docs/api.md` with axum, on top of anb-core, and the public
//! page at `/` (`page`). Existing
//! clients of the original service work unchanged: same paths, fields, status codes and
//! `{"detail"}` errors; additive fields only.

mod auth;
mod direct;
mod error;
mod fields;
mod files;
mod json;
mod limits;
mod metrics;
mod microcache;
mod openapi;
mod ops;
mod page;
mod passwords;
mod public;
mod responses;
mod server;
mod shared;
mod sniff;
mod sweep;
mod throttle;
mod videos;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use anb_core::backends::Backends;
use anb_core::blob::UrlSigner;

pub use auth::{KnownUsers, Tokens};
pub use limits::UploadLimits;
pub use metrics::Metrics;
pub use microcache::MicroCache;
pub use openapi::ApiDoc;
pub use passwords::{available_memory, default_concurrency as default_password_hash_concurrency, Passwords};
pub use server::ServerOptions;
pub use sweep::{remove_abandoned, requeue_stuck, sweep_once};
pub use throttle::{ClientAddr, Throttle, ThrottleOptions};

/// The largest JSON body any route takes (413 beyond); uploads have their own limits.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// The liveness path load balancers check (no I/O; the deployment test ties the template to it).
pub const HEALTH_PATH: &str = "/health";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub backends: Backends,
    /// Shared, like every field of substance: the state is cloned for each request that
    /// extracts it, and the token checker holds keys and a validation set.
    pub tokens: Arc<Tokens>,
    /// Users whose token checked out lately (see `auth::KnownUsers`).
    pub known_users: Arc<auth::KnownUsers>,
    /// Verifies the folder backend's `/files/...` URLs.
    pub signer: Arc<UrlSigner>,
    pub max_upload_bytes: u64,
    /// What `GET /api/upload-limits` publishes.
    pub upload_limits: Arc<UploadLimits>,
    pub metrics: Arc<Metrics>,
    /// One-second cache of the public read routes.
    pub public_cache: Arc<microcache::MicroCache>,
    /// Quarter-second cache of each player's own reads, keyed by the player; this process's
    /// writes clear what they change (see `shared::forget_own`).
    pub own_cache: Arc<microcache::MicroCache>,
    /// More metrics text appended to `/metrics` (the worker's, when both run in one process).
    pub extra_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// A `processing` video whose attempt has not beaten for this long is stuck: the sweep
    /// enqueues it again ([`stuck_after`] of the workers' lease window).
    pub stuck_after: Duration,
    /// Password hashing at a bounded cost.
    pub passwords: Arc<Passwords>,
    /// Rate limits per client address and per account.
    pub throttle: Arc<Throttle>,
    /// Connection limits and load shedding.
    pub server: ServerOptions,
    /// `ANB_METRICS_TOKEN`: the bearer `/metrics` requires, if any.
    pub metrics_token: Option<Arc<str>>,
    /// The page's Content-Security-Policy, once the blob store's origin is known (see `page`).
    pub page_policy: Arc<std::sync::OnceLock<HeaderValue>>,
}

/// When a `processing` row counts as stuck, for workers with a lease window of `visibility`:
/// its attempt is dead after half a window, and its message, if it still exists, comes back
/// within the window plus a hand-on delay. Past two windows and half a minute, nothing will.
pub fn stuck_after(visibility: Duration) -> Duration {
    visibility * 2 + Duration::from_secs(30)
}

/// Web settings beyond the backends.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub secret_key: String,
    pub max_upload_bytes: u64,
    /// Allowed CORS origins; `*` for any.
    pub cors_origins: Vec<String>,
    /// Password hashes at once (`ANB_PASSWORD_HASH_CONCURRENCY`, or from memory and CPUs).
    pub password_hash_concurrency: usize,
    pub throttle: ThrottleOptions,
    pub server: ServerOptions,
    pub metrics_token: Option<String>,
    /// The media limits of the pipeline the workers run (published, not enforced, here).
    pub input_limits: anb_media::InputLimits,
}

impl WebOptions {
    /// The options of `settings`, signing with `secret_key`.
    pub fn from_settings(settings: &anb_core::Settings, secret_key: String) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        WebOptions {
            secret_key,
            max_upload_bytes: settings.max_upload_bytes,
            cors_origins: settings.cors_origin_list(),
            password_hash_concurrency: settings
                .password_hash_concurrency
                .unwrap_or_else(|| passwords::default_concurrency(available_memory(), cpus)),
            throttle: ThrottleOptions::from_settings(settings),
            server: ServerOptions::from_settings(settings),
            metrics_token: settings.metrics_token.clone().filter(|t| !t.is_empty()),
            input_limits: anb_media::InputLimits::default(),
        }
    }
}

impl AppState {
    pub fn new(backends: Backends, signer: UrlSigner, options: &WebOptions) -> Self {
        AppState {
            backends,
            tokens: Arc::new(Tokens::new(&anb_core::keys::token_key(&options.secret_key))),
            known_users: Arc::default(),
            signer: Arc::new(signer),
            max_upload_bytes: options.max_upload_bytes,
            upload_limits: Arc::new(UploadLimits::new(options.max_upload_bytes, &options.input_limits)),
            metrics: Arc::default(),
            public_cache: Arc::new(MicroCache::new(microcache::PUBLIC_TTL)),
            own_cache: Arc::new(MicroCache::new(microcache::OWN_TTL)),
            extra_metrics: None,
            stuck_after: stuck_after(Duration::from_secs(anb_core::Settings::default().visibility_timeout_secs)),
            passwords: Arc::new(Passwords::new(options.password_hash_concurrency)),
            throttle: Arc::new(Throttle::new(options.throttle)),
            server: options.server,
            metrics_token: options.metrics_token.as_deref().map(Arc::from),
            page_policy: Arc::default(),
        }
    }
}

/// The whole API.
///
/// Every route but `/health` sits behind a concurrency limit that refuses the excess at once
/// with 503 and `Retry-After` (load shedding), so a flood cannot queue up work or memory, and the
/// load balancer's health check keeps answering through it. JSON bodies are limited to
/// [`MAX_JSON_BODY_BYTES`] (413).
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let shed = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            error::ApiError::Busy("at the concurrent request limit".into()).into_response()
        }))
        .load_shed()
        // Global: `Router::layer` gives each route its own copy of a layer, and a plain
        // concurrency limit would count per route.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(state.server.max_concurrent_requests.max(1)));
    let health = Router::new().route(HEALTH_PATH, get(ops::health));
    // One router per resource, each in its own module.
    let api = Router::new()
        .merge(ops::router())
        .merge(auth::router())
        .merge(videos::router())
        .merge(direct::router())
        .merge(limits::router())
        .merge(public::router())
        .merge(files::router())
        .merge(openapi::router())
        .merge(page::router())
        .fallback(|| async { error::ApiError::not_found("Not Found") })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(shed)
        .merge(health)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), ops::track))
        .with_state(state);
    api.layer(cors(cors_origins))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                .on_failure(log_failure),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Server errors are logged, but not the 503s of load shedding: a flood would turn into a flood
/// of log lines (the shedding itself is counted in the metrics).
fn log_failure(class: tower_http::classify::ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    use tower_http::classify::ServerErrorsFailureClass as Class;
    match class {
        Class::StatusCode(status) if status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(latency_ms = latency.as_millis() as u64, "Shed a request (503)")
        }
        class => tracing::error!(classification = %class, latency_ms = latency.as_millis() as u64, "Response failed"),
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE])
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect::<Vec<_>>())
    }
}

/// Serve until `shutdown` resolves, then finish the requests in flight. The sweep that
/// re-enqueues lost uploads runs beside it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cors_origins: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep::run(state.clone()));
    let options = state.server;
    let app = router(state, &cors_origins);
    let result = server::serve_connections(listener, app, options, shutdown).await;
    sweeper.abort();
    result
}
