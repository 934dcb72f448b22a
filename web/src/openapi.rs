//! `/openapi.json`, generated from the handlers' annotations, and `/docs`, a page that renders
//! it with no script or style from anywhere else (operators' networks are often closed).

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "ANB Video API", description = "Upload, process, vote for and rank basketball clips. Compatible with the ANB Rising Stars Showcase API."),
    paths(
        crate::auth::signup, crate::auth::login,
        crate::videos::upload, crate::limits::upload_limits, crate::direct::start, crate::direct::complete, crate::videos::list_mine, crate::videos::detail, crate::videos::delete,
        crate::public::videos, crate::public::vote, crate::public::rankings,
        crate::ops::health, crate::ops::ready, crate::ops::metrics,
        crate::files::download, crate::files::upload,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

pub fn router() -> Router<crate::AppState> {
    Router::new().route("/openapi.json", get(openapi_json)).route("/docs", get(docs))
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

pub async fn openapi_json() -> impl IntoResponse {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    Json(doc)
}

pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
