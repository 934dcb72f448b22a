//! `GET /api/upload-limits`: what a file must be for the platform to process it, so an app can
//! check a clip before sending it. The same limits refuse a job with `input-too-large` or
//! `unsupported-input` (the message names the limit below that was hit).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::AppState;
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/upload-limits", get(upload_limits))
}

/// Upload limits, from the pipeline's `[stage.limits]` and `ANB_MAX_UPLOAD_BYTES`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UploadLimits {
    /// Largest file accepted, in bytes (413 beyond).
    pub max_file_bytes: u64,
    /// Accepted containers, as file extensions (anything else: `unsupported-input`).
    pub containers: Vec<String>,
    /// Accepted video codecs.
    pub video_codecs: Vec<String>,
    /// Accepted audio codecs.
    pub audio_codecs: Vec<String>,
    /// Widest picture, in pixels.
    pub max_width: u32,
    /// Tallest picture, in pixels.
    pub max_height: u32,
    /// Largest picture area, width × height.
    pub max_pixels: u64,
    /// Highest frame rate.
    pub max_fps: u32,
    /// Most pixels a second, width × height × frame rate.
    pub max_pixel_rate: u64,
    /// Most video and audio streams in one file.
    pub max_streams: u32,
    /// Longest input, in seconds.
    pub max_duration_secs: u32,
    /// Most samples (frames, sound packets) in one stream.
    pub max_frames: u64,
    /// Largest MP4/MOV index (`moov` box), in bytes.
    pub max_index_bytes: u64,
    /// The processing time budget: this many seconds...
    pub timeout_base_secs: u32,
    /// ...plus this many per second of output at 1080p30, scaled by the input's pixel rate
    /// (past it: `job-timeout`).
    pub timeout_secs_per_output_sec: u32,
}

impl UploadLimits {
    pub fn new(max_file_bytes: u64, limits: &anb_media::InputLimits) -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        UploadLimits {
            max_file_bytes,
            containers: strings(anb_media::container::ACCEPTED),
            video_codecs: strings(anb_media::codecs::VIDEO),
            audio_codecs: strings(anb_media::codecs::AUDIO),
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
            max_fps: limits.max_fps,
            max_pixel_rate: limits.max_pixel_rate,
            max_streams: limits.max_streams,
            max_duration_secs: limits.max_duration_secs,
            max_frames: limits.max_frames,
            max_index_bytes: anb_media::mp4::MAX_INDEX_BYTES,
            timeout_base_secs: limits.timeout_base_secs,
            timeout_secs_per_output_sec: limits.timeout_secs_per_output_sec,
        }
    }
}

#[utoipa::path(get, path = "/api/upload-limits", tag = "videos", responses(
    (status = 200, description = "What an upload must be to be processed", body = UploadLimits),
))]
pub async fn upload_limits(State(state): State<AppState>) -> impl IntoResponse {
    // The limits change only with a deployment: clients and caches may keep them a while.
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(state.upload_limits.as_ref().clone()))
}
