//! Operations: liveness, readiness, metrics, request accounting.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;

/// Liveness: the process answers. No I/O, so a slow database never gets a healthy task killed.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "`{status: \"healthy\", version}`")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: the database and the queue answer.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Database and queue reachable"),
    (status = 503, description = "One of them is not"),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let database = state.backends.store.ping().await.map_err(|e| e.to_string());
    let queue = state.backends.queue.depth().await.map_err(|e| e.to_string());
    let ok = database.is_ok() && queue.is_ok();
    let describe = |r: Result<(), String>| r.map_or_else(|e| e, |_| "ok".to_string());
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "database": describe(database),
        "queue": describe(queue.map(drop)),
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus exposition text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let queue = state.backends.queue.depth().await.ok().map(|d| (d.visible, d.in_flight));
    let mut text = state.metrics.render(queue);
    if let Some(extra) = &state.extra_metrics {
        text.push_str(&extra());
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
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
