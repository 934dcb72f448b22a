//! Operations: liveness, readiness, metrics, request accounting.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;
use axum::routing::get;
use axum::Router;

/// Readiness and metrics (`/health` is routed apart, outside load shedding: see `crate::router`).
pub fn router() -> Router<AppState> {
    Router::new().route("/ready", get(ready)).route("/metrics", get(metrics))
}

/// Liveness: the process answers. No I/O, so a slow database never gets a healthy task killed.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "`{status: \"healthy\", version}`")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: the database and the queue answer. The public answer says only which of them is
/// down; why is in the log (errors name hosts and internals).
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "`{status: \"ready\"}`: database and queue reachable"),
    (status = 503, description = "`{status: \"unavailable\", database, queue}`: one of them is not"),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let database = state.backends.store.ping().await.map_err(|e| e.to_string());
    let queue = state.backends.queue.depth().await.map(drop).map_err(|e| e.to_string());
    let describe = |what: &str, r: &Result<(), String>| match r {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(dependency = what, error = %e, "Not ready");
            "unavailable"
        }
    };
    let body = json!({
        "status": if database.is_ok() && queue.is_ok() { "ready" } else { "unavailable" },
        "database": describe("database", &database),
        "queue": describe("queue", &queue),
    });
    let status = if database.is_ok() && queue.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus text metrics; with `ANB_METRICS_TOKEN` set, for its bearer only.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus exposition text"),
    (status = 401, description = "ANB_METRICS_TOKEN is set and the request does not carry it", body = crate::error::Detail),
))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.trim().as_bytes(), token.as_bytes())) {
            return crate::error::ApiError::unauthorized("Metrics need the metrics token").into_response();
        }
    }
    let queue = state.backends.queue.depth().await.ok().map(|d| (d.visible, d.in_flight));
    let mut text = state.metrics.render(queue);
    if let Some(extra) = &state.extra_metrics {
        text.push_str(&extra());
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Equality in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Count every request by its route template and status, and time it.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.metrics.request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}
