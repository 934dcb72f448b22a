//! The public page at `/`: a gallery, the rankings, sign-up and sign-in, and a player's own
//! videos with a direct upload. Three static files embedded in the binary (no build step, no
//! CDN): the page runs in the browser on the public API.
//!
//! Every answer carries a Content-Security-Policy that allows scripts, styles and connections to
//! this site only, and pictures, media and uploads to this site and the blob store's origin
//! (the S3 endpoint in production, the folder backend's public address on a laptop), found by
//! signing one link. Nothing inline runs: the page has no inline script or style.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use anb_core::blob::BlobKey;

use crate::AppState;

/// One embedded file, with its validator computed at compile time.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: &'static str,
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {{
        const BODY: &str = include_str!(concat!("page/", $file));
        const ETAG: &str = concat!("\"", $file, "-", env!("CARGO_PKG_VERSION"), "\"");
        Asset { body: BODY, content_type: $content_type, etag: ETAG }
    }};
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
const SCRIPT: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const STYLE: Asset = asset!("app.css", "text/css; charset=utf-8");
const ICON: Asset = asset!("icon.svg", "image/svg+xml");

/// The page's routes (merged into the API's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|state: State<AppState>, headers: HeaderMap| serve(state, headers, &INDEX)))
        .route("/index.html", get(|state: State<AppState>, headers: HeaderMap| serve(state, headers, &INDEX)))
        .route("/app.js", get(|state: State<AppState>, headers: HeaderMap| serve(state, headers, &SCRIPT)))
        .route("/app.css", get(|state: State<AppState>, headers: HeaderMap| serve(state, headers, &STYLE)))
        .route("/favicon.svg", get(|state: State<AppState>, headers: HeaderMap| serve(state, headers, &ICON)))
}

async fn serve(State(state): State<AppState>, headers: HeaderMap, asset: &'static Asset) -> Response {
    let csp = content_security_policy(&state).await;
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes());
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    out.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    // Revalidated on every visit (a 304 when unchanged), so a new release shows at once.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Signed links must not leak to other sites through the Referer header.
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The policy: this site for everything, plus the blob store's origin where the page shows,
/// plays or uploads blobs. Kept once the origin is known; until then (a store that cannot sign
/// yet) each answer tries again and allows this site alone.
async fn content_security_policy(state: &AppState) -> HeaderValue {
    if let Some(policy) = state.page_policy.get() {
        return policy.clone();
    }
    match blob_origin(state).await {
        Some(origin) => state.page_policy.get_or_init(|| policy_with(&format!(" {origin}"))).clone(),
        None => policy_with(""),
    }
}

fn policy_with(media: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{media}; \
         media-src 'self'{media}; connect-src 'self'{media}; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// The origin (`scheme://host[:port]`) of the links the blob store signs, if it can sign one.
async fn blob_origin(state: &AppState) -> Option<String> {
    let key = BlobKey::new("posters/origin-probe.jpg").ok()?;
    let url = state.backends.blobs.presign_get(&key, std::time::Duration::from_secs(60)).await.ok()?;
    origin_of(&url)
}

fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let safe = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    (matches!(scheme, "http" | "https") && safe(host)).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn the_origin_is_scheme_host_and_port_only() {
        assert_eq!(origin_of("http://127.0.0.1:8000/files/a.mp4?sig=1").as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(
            origin_of("https://b.s3.eu-west-1.amazonaws.com/p/x.jpg?X-Amz=1").as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(origin_of("https://[::1]:9000/x").as_deref(), Some("https://[::1]:9000"));
        // Nothing that could break out of the header's grammar, and no other schemes.
        assert_eq!(origin_of("https://evil; script-src *"), None);
        assert_eq!(origin_of("data://x"), None);
        assert_eq!(origin_of("/files/relative"), None);
    }
}
