//! The sweep: uploads whose job message was never sent (the queue was down at upload time)
//! are found in the database and enqueued, so an upload is never silently lost.

use std::time::Duration;

use time::OffsetDateTime;

use crate::videos::enqueue;
use crate::AppState;

/// How often the sweep looks.
const EVERY: Duration = Duration::from_secs(30);
/// Uploads younger than this are left to the request that is still enqueueing them.
const GRACE: time::Duration = time::Duration::seconds(60);
const BATCH: i64 = 100;

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(&state, OffsetDateTime::now_utc() - GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "re-enqueued uploads that had no job"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; next time"),
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
