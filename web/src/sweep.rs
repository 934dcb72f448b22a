//! The sweep: uploads whose job message was never sent (the queue was down at upload time)
//! are found in the database and enqueued, so an upload is never silently lost; `processing`
//! videos whose attempt died and whose message is gone (dead-lettered by receives that were not
//! the job's, say) are enqueued again, so no job is stranded; direct uploads whose file never
//! came are removed once their upload URL is long dead.

use std::time::Duration;

use time::OffsetDateTime;

use anb_core::blob::BlobKey;

use crate::direct::UPLOAD_URL_TTL;
use crate::shared::enqueue;
use crate::AppState;

/// How often the sweep looks.
const EVERY: Duration = Duration::from_secs(30);
/// Uploads younger than this are left to the request that is still enqueueing them.
const GRACE: time::Duration = time::Duration::seconds(60);
const BATCH: i64 = 100;
/// A direct upload is abandoned this long after its URL expired (a PUT that started just
/// before the expiry may still be running).
const ABANDONED_AFTER_EXPIRY: time::Duration = time::Duration::hours(1);

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.throttle.forget_idle();
        match sweep_once(&state, OffsetDateTime::now_utc() - GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "re-enqueued uploads that had no job"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; next time"),
        }
        match requeue_stuck(&state, OffsetDateTime::now_utc() - state.stuck_after).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                videos = n,
                stuck_after_secs = state.stuck_after.as_secs(),
                "Re-enqueued stuck processing jobs"
            ),
            Err(e) => tracing::warn!(error = %e, "sweep of stuck jobs failed; next time"),
        }
        let abandoned_before = OffsetDateTime::now_utc() - UPLOAD_URL_TTL - ABANDONED_AFTER_EXPIRY;
        match remove_abandoned(&state, abandoned_before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "removed direct uploads whose file never came"),
            Err(e) => tracing::warn!(error = %e, "sweep of abandoned uploads failed; next time"),
        }
    }
}

/// Enqueue confirmed uploads older than `before` that never got a job; returns how many.
pub async fn sweep_once(state: &AppState, before: OffsetDateTime) -> Result<usize, anb_core::store::StoreError> {
    let ids = state.backends.store.unqueued_videos(before, BATCH).await?;
    for id in &ids {
        enqueue(state, *id).await;
    }
    Ok(ids.len())
}

/// Enqueue `processing` videos whose attempt has not beaten since `before` (nor been enqueued
/// since); returns how many. A duplicate is harmless: the row settles it.
pub async fn requeue_stuck(state: &AppState, before: OffsetDateTime) -> Result<usize, anb_core::store::StoreError> {
    let ids = state.backends.store.stale_processing(before, BATCH).await?;
    for id in &ids {
        tracing::warn!(video_id = %id, "Re-enqueueing a stuck processing job");
        enqueue(state, *id).await;
    }
    state.metrics.stuck_requeued(ids.len() as u64);
    Ok(ids.len())
}

/// Remove direct uploads announced before `before` whose file was never confirmed, with
/// whatever bytes did arrive; returns how many.
pub async fn remove_abandoned(state: &AppState, before: OffsetDateTime) -> Result<usize, anb_core::store::StoreError> {
    let mut removed = 0;
    for video in state.backends.store.abandoned_uploads(before, BATCH).await? {
        // The row goes first (only if still unconfirmed), so a `complete` racing the sweep
        // either wins or finds no video; never a row whose file was deleted.
        if !state.backends.store.delete_abandoned_upload(video.id).await? {
            continue;
        }
        removed += 1;
        if let Ok(key) = BlobKey::new(video.original_key) {
            if let Err(e) = state.backends.blobs.delete(&key).await {
                tracing::warn!(%key, error = %e, "could not delete an abandoned upload's blob");
            }
        }
    }
    Ok(removed)
}
