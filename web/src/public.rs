//! What everyone sees: completed videos, votes, rankings.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anb_core::model::Page;
use anb_core::store::{Conflict, StoreError};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Lines, MAX_PLACE_CHARS};
use crate::responses::{NoSuchVideo, Unauthorized};
use crate::shared::{presigned, rfc3339, video_not_found, VideoId};
use crate::throttle::ClientAddr;
use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

/// What everyone sees, and voting.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/public/videos", get(videos))
        .route("/api/public/videos/{id}/vote", post(vote))
        .route("/api/public/rankings", get(rankings))
}

const DEFAULT_PAGE_SIZE: u32 = 10;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page (default 1).
    #[param(value_type = Option<u32>)]
    page: Option<String>,
    /// 1 to 100 (default 10).
    #[param(value_type = Option<u32>)]
    page_size: Option<String>,
    /// Rankings only: players of this city (any case, at most 100 characters).
    #[param(max_length = 100)]
    city: Option<String>,
}

impl PageQuery {
    /// `page` ≥ 1 and 1 ≤ `page_size` ≤ 100, else 422 naming the parameter.
    fn page(&self) -> ApiResult<Page> {
        let parse = |name: &str, value: &Option<String>, default: u32, max: u32| -> ApiResult<u32> {
            let Some(text) = value else { return Ok(default) };
            match text.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::Invalid(vec![(name.to_string(), format!("must be an integer from 1 to {max}"))])),
            }
        };
        let page = parse("page", &self.page, 1, 1_000_000)?;
        let size = parse("page_size", &self.page_size, DEFAULT_PAGE_SIZE, Page::MAX_SIZE)?;
        Ok(Page::new(page, size))
    }

    /// The city filter, trimmed and case-folded (one cache key for "Cali" and " cali"), or 422.
    fn city(&self) -> ApiResult<Option<String>> {
        let Some(city) = self.city.as_deref().map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
        let mut problems = Vec::new();
        fields::check("city", city, MAX_PLACE_CHARS, Lines::Single, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems));
        }
        Ok(Some(city.to_lowercase()))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicVideoResponse {
    video_id: Uuid,
    title: String,
    player_name: String,
    city: String,
    country: String,
    processed_url: Option<String>,
    /// A JPEG still of the video (signed, expiring like `processed_url`), or null.
    poster_url: Option<String>,
    votes: i64,
    uploaded_at: String,
}

/// Completed videos, newest first.
#[utoipa::path(get, path = "/api/public/videos", tag = "public", params(PageQuery), responses(
    (status = 200, description = "A page of videos", body = Vec<PublicVideoResponse>),
    (status = 422, description = "Bad page or page_size", body = crate::error::ValidationDetail),
))]
pub async fn videos(State(state): State<AppState>, Query(query): Query<PageQuery>) -> ApiResult<Response> {
    let page = query.page()?;
    let key = format!("videos:{}:{}", page.page, page.page_size);
    cached_json(&state, key, || async {
        let rows = state.backends.store.public_videos(page).await?;
        let mut out = Vec::with_capacity(rows.len());
        for v in rows {
            out.push(PublicVideoResponse {
                processed_url: presigned(&state, v.processed_key.as_deref()).await?,
                poster_url: presigned(&state, v.poster_key.as_deref()).await?,
                video_id: v.id,
                title: v.title,
                player_name: format!("{} {}", v.first_name, v.last_name),
                city: v.city,
                country: v.country,
                votes: v.votes,
                uploaded_at: rfc3339(v.uploaded_at),
            });
        }
        Ok(out)
    })
    .await
}

/// A JSON answer from the public micro-cache (see [`crate::microcache`]), computed on a miss.
async fn cached_json<T, F, Fut>(state: &AppState, key: String, compute: F) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    crate::microcache::json_response(&state.public_cache, key, compute).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VoteResponse {
    message: &'static str,
    video_id: Uuid,
    total_votes: i64,
}

/// Vote for a completed video, once per user.
#[utoipa::path(post, path = "/api/public/videos/{id}/vote", tag = "public", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video")), responses(
    (status = 200, description = "Counted", body = VoteResponse),
    (status = 400, description = "Already voted, not completed, or one's own video", body = crate::error::Detail),
    Unauthorized,
    NoSuchVideo,
    (status = 429, description = "Too many votes from this address (see Retry-After)", body = crate::error::Detail),
))]
pub async fn vote(
    State(state): State<AppState>,
    client: ClientAddr,
    AuthUser(user_id): AuthUser,
    VideoId(video_id): VideoId,
) -> ApiResult<Json<VoteResponse>> {
    state.throttle.vote(&client)?;
    let total_votes = state.backends.store.vote(video_id, user_id).await.map_err(|e| match e {
        StoreError::NotFound => video_not_found(),
        StoreError::Conflict(Conflict::AlreadyVoted) => ApiError::bad_request("You have already voted for this video"),
        StoreError::Conflict(Conflict::NotCompleted) => ApiError::bad_request("Only processed videos can be voted for"),
        StoreError::Conflict(Conflict::OwnVideo) => ApiError::bad_request("You cannot vote for your own video"),
        e => e.into(),
    })?;
    // Visitors of this process see the new count at once (others within the cache's TTL).
    state.public_cache.clear();
    Ok(Json(VoteResponse { message: "Vote recorded", video_id, total_votes }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RankingEntry {
    position: i64,
    username: String,
    city: String,
    country: String,
    votes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RankingsResponse {
    rankings: Vec<RankingEntry>,
    total: i64,
    page: u32,
    page_size: u32,
    total_pages: i64,
}

/// Players by votes on their completed videos; ties in name order.
#[utoipa::path(get, path = "/api/public/rankings", tag = "public", params(PageQuery), responses(
    (status = 200, description = "A page of the rankings", body = RankingsResponse),
    (status = 422, description = "Bad page, page_size or city", body = crate::error::ValidationDetail),
))]
pub async fn rankings(State(state): State<AppState>, Query(query): Query<PageQuery>) -> ApiResult<Response> {
    let page = query.page()?;
    let city = query.city()?;
    let key = format!("rankings:{}:{}:{}", page.page, page.page_size, city.as_deref().unwrap_or(""));
    cached_json(&state, key, || async {
        let (rows, total) = state.backends.store.rankings(city.as_deref(), page).await?;
        let rankings = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| RankingEntry {
                position: page.offset() + i as i64 + 1,
                username: format!("{} {}", r.first_name, r.last_name),
                city: r.city,
                country: r.country,
                votes: r.votes,
            })
            .collect();
        let total_pages = (total + page.limit() - 1) / page.limit();
        Ok(RankingsResponse { rankings, total, page: page.page, page_size: page.page_size, total_pages })
    })
    .await
}
