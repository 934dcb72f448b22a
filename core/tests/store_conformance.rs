//! The database store's conformance suite, run on PostgreSQL and on SQLite.

use anb_core::db::Db;
use anb_core::model::{NewUser, NewVideo, Page, StartOutcome, VideoStatus};
use anb_core::store::{Conflict, SqlStore, Store, StoreError};
use anb_core::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

anb_core::on_both_databases!(
    users_are_unique_by_email_in_any_case,
    videos_belong_to_existing_users_and_list_newest_first,
    a_video_with_votes_cannot_be_deleted,
    status_moves_forward_only_and_late_writers_are_fenced,
    transient_failures_can_be_retried_permanent_ones_cannot,
    votes_are_once_per_user_and_for_completed_videos_only,
    rankings_order_ties_filter_by_city_and_paginate,
    public_listing_shows_completed_videos_only,
    the_sweep_finds_confirmed_uploads_that_were_never_enqueued,
    the_sweep_finds_processing_rows_whose_attempt_died_once_per_window,
    a_redrive_from_failed_starts_a_fresh_attempt_budget,
    migrations_run_twice_without_harm,
);

/// Heartbeat windows: an attempt counts as alive for a minute, or as dead at once.
const LIVE: std::time::Duration = std::time::Duration::from_secs(60);
const STALE: std::time::Duration = std::time::Duration::from_millis(10);

fn new_user(email: &str, first: &str, city: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        first_name: first.into(),
        last_name: "Player".into(),
        city: city.into(),
        country: "Colombia".into(),
    }
}

fn new_video(user_id: Uuid) -> NewVideo {
    let id = Uuid::new_v4();
    NewVideo {
        id,
        user_id,
        title: format!("clip {id}"),
        description: Some("a dunk".into()),
        original_key: format!("uploads/{id}.mp4"),
        original_size: Some(1234),
    }
}

async fn user(store: &SqlStore, email: &str, first: &str, city: &str) -> Uuid {
    store.create_user(new_user(email, first, city)).await.unwrap().id
}

/// A video taken all the way to `completed`.
async fn completed_video(store: &SqlStore, user_id: Uuid) -> Uuid {
    let video = store.create_video(new_video(user_id)).await.unwrap();
    let StartOutcome::Started { attempt, .. } = store.start_processing(video.id, LIVE).await.unwrap() else {
        panic!("a pending video starts")
    };
    assert!(store.complete(video.id, attempt, &format!("processed/{}.mp4", video.id), None).await.unwrap());
    video.id
}

async fn users_are_unique_by_email_in_any_case(db: Db) {
    let store = SqlStore::new(db);
    let created = store.create_user(new_user("Ana@Example.com", "Ana", "Bogotá")).await.unwrap();
    assert_eq!(created.email, "Ana@Example.com");
    assert_eq!((created.first_name.as_str(), created.last_name.as_str()), ("Ana", "Player"));
    let err = store.create_user(new_user("ana@example.COM", "Other", "Cali")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::DuplicateEmail)), "{err:?}");
    let found = store.user_by_email("ANA@example.com").await.unwrap().expect("found in any case");
    assert_eq!(found, created);
    assert_eq!(store.user(created.id).await.unwrap(), Some(created));
    assert_eq!(store.user(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.user_by_email("nobody@example.com").await.unwrap(), None);
}

async fn videos_belong_to_existing_users_and_list_newest_first(db: Db) {
    let store = SqlStore::new(db);
    let err = store.create_video(new_video(Uuid::new_v4())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::MissingReference)), "{err:?}");

    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let other = user(&store, "other@example.com", "Other", "Cali").await;
    let first = store.create_video(new_video(owner)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = store.create_video(new_video(owner)).await.unwrap();
    store.create_video(new_video(other)).await.unwrap();

    assert_eq!(first.status, VideoStatus::Pending);
    assert_eq!((first.attempts, first.votes, first.progress), (0, 0, 0.0));
    assert_eq!(first.description.as_deref(), Some("a dunk"));
    let mine: Vec<Uuid> = store.videos_of(owner).await.unwrap().into_iter().map(|v| v.id).collect();
    assert_eq!(mine, vec![second.id, first.id], "newest first, only the owner's");

    let deleted = store.delete_video(first.id).await.unwrap().expect("deleted");
    assert_eq!(deleted.original_key, first.original_key, "the caller gets the keys to remove");
    assert_eq!(store.video(first.id).await.unwrap(), None);
    assert_eq!(store.delete_video(first.id).await.unwrap(), None, "deleting twice finds nothing");
}

async fn a_video_with_votes_cannot_be_deleted(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let fan = user(&store, "fan@example.com", "Fan", "Cali").await;
    let video = completed_video(&store, owner).await;
    store.vote(video, fan).await.unwrap();
    let err = store.delete_video(video).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::HasVotes)), "{err:?}");
    assert_eq!(store.video(video).await.unwrap().expect("still there").votes, 1);
}

async fn status_moves_forward_only_and_late_writers_are_fenced(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let video = store.create_video(new_video(owner)).await.unwrap().id;

    let StartOutcome::Started { attempt: first, .. } = store.start_processing(video, LIVE).await.unwrap() else {
        panic!()
    };
    assert_eq!(first, 1);
    assert!(store.set_progress(video, first, Some(0.4)).await.unwrap());
    assert!(store.set_progress(video, first, None).await.unwrap(), "a heartbeat without progress");
    assert_eq!(store.video(video).await.unwrap().unwrap().progress, 0.4, "keeps the last progress");
    // A duplicate message while the first attempt is alive does not start a second one.
    assert_eq!(store.start_processing(video, LIVE).await.unwrap(), StartOutcome::InProgress);
    // The first worker vanished (no heartbeat); the message came back and a second worker took it.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let StartOutcome::Started { attempt: second, video: row } = store.start_processing(video, STALE).await.unwrap()
    else {
        panic!("a redelivery of a processing video starts a new attempt")
    };
    assert_eq!((second, row.attempts, row.progress), (2, 2, 0.0));
    // The first worker's late writes find nothing to update.
    assert!(!store.set_progress(video, first, Some(0.9)).await.unwrap());
    assert!(!store.fail(video, first, ErrorCode::PipelineStalled, "late", true).await.unwrap());
    assert!(!store.complete(video, first, "processed/x.mp4", None).await.unwrap());

    assert!(store.complete(video, second, &format!("processed/{video}.mp4"), None).await.unwrap());
    let done = store.video(video).await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (VideoStatus::Completed, 1.0));
    assert!(done.processed_at.is_some());
    // A duplicate message for a completed video does no work, and nothing moves it back.
    assert_eq!(store.start_processing(video, LIVE).await.unwrap(), StartOutcome::AlreadyCompleted);
    assert!(!store.fail(video, second, ErrorCode::InvalidInput, "duplicate", false).await.unwrap());
    assert!(!store.retry_later(video, second, ErrorCode::StorageUnavailable, "duplicate").await.unwrap());
    assert!(!store.complete(video, second, "processed/other.mp4", None).await.unwrap());
    let after = store.video(video).await.unwrap().unwrap();
    assert_eq!((after.status, after.processed_key), (VideoStatus::Completed, done.processed_key));
    assert_eq!(store.start_processing(Uuid::new_v4(), LIVE).await.unwrap(), StartOutcome::Missing);
}

async fn transient_failures_can_be_retried_permanent_ones_cannot(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;

    let flaky = store.create_video(new_video(owner)).await.unwrap().id;
    let StartOutcome::Started { attempt, .. } = store.start_processing(flaky, LIVE).await.unwrap() else { panic!() };
    assert!(store.retry_later(flaky, attempt, ErrorCode::StorageUnavailable, "S3 timed out").await.unwrap());
    let row = store.video(flaky).await.unwrap().unwrap();
    assert_eq!((row.status, row.error_code.as_deref()), (VideoStatus::Pending, Some("storage-unavailable")));
    let StartOutcome::Started { attempt, .. } = store.start_processing(flaky, LIVE).await.unwrap() else { panic!() };
    // Out of receives: failed with the last code, but a redrive may still retry it.
    assert!(store.fail(flaky, attempt, ErrorCode::PipelineStalled, "no progress", true).await.unwrap());
    assert!(matches!(store.start_processing(flaky, LIVE).await.unwrap(), StartOutcome::Started { attempt: 3, .. }));

    let broken = store.create_video(new_video(owner)).await.unwrap().id;
    let StartOutcome::Started { attempt, .. } = store.start_processing(broken, LIVE).await.unwrap() else { panic!() };
    assert!(store.fail(broken, attempt, ErrorCode::InvalidInput, "not a video", false).await.unwrap());
    assert_eq!(store.start_processing(broken, LIVE).await.unwrap(), StartOutcome::PermanentlyFailed);
    let row = store.video(broken).await.unwrap().unwrap();
    assert_eq!((row.status, row.error_code.as_deref(), row.attempts), (VideoStatus::Failed, Some("invalid-input"), 1));
    assert_eq!(row.error_message.as_deref(), Some("not a video"));

    // A direct upload that was never confirmed is not processed.
    let unconfirmed = store.create_video(NewVideo { original_size: None, ..new_video(owner) }).await.unwrap().id;
    assert_eq!(store.start_processing(unconfirmed, LIVE).await.unwrap(), StartOutcome::Missing);
    assert!(store.confirm_upload(unconfirmed, 99).await.unwrap());
    assert!(!store.confirm_upload(unconfirmed, 99).await.unwrap(), "confirmed once");
    assert!(matches!(store.start_processing(unconfirmed, LIVE).await.unwrap(), StartOutcome::Started { .. }));
}

async fn votes_are_once_per_user_and_for_completed_videos_only(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let fans = [user(&store, "a@example.com", "A", "Cali").await, user(&store, "b@example.com", "B", "Cali").await];
    let video = completed_video(&store, owner).await;
    assert_eq!(store.vote(video, fans[0]).await.unwrap(), 1);
    assert_eq!(store.vote(video, fans[1]).await.unwrap(), 2);
    let err = store.vote(video, fans[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::AlreadyVoted)), "{err:?}");
    assert_eq!(store.video(video).await.unwrap().unwrap().votes, 2);

    let pending = store.create_video(new_video(owner)).await.unwrap().id;
    let err = store.vote(pending, fans[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::NotCompleted)), "{err:?}");
    let err = store.vote(Uuid::new_v4(), fans[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn rankings_order_ties_filter_by_city_and_paginate(db: Db) {
    let store = SqlStore::new(db);
    // Players: Zoe (Cali) 3 votes over two videos, Ana (Bogotá) 2, Bea (Cali) 2, Carl (cali) 0.
    let zoe = user(&store, "zoe@example.com", "Zoe", "Cali").await;
    let ana = user(&store, "ana@example.com", "Ana", "Bogotá").await;
    let bea = user(&store, "bea@example.com", "Bea", "Cali").await;
    let carl = user(&store, "carl@example.com", "Carl", "cali").await;
    let voters: Vec<Uuid> = futures_util::future::join_all((0..3).map(|i| {
        let store = store.clone();
        async move { user(&store, &format!("voter{i}@example.com"), "Voter", "Medellín").await }
    }))
    .await;
    let zoe1 = completed_video(&store, zoe).await;
    let zoe2 = completed_video(&store, zoe).await;
    let ana1 = completed_video(&store, ana).await;
    let bea1 = completed_video(&store, bea).await;
    completed_video(&store, carl).await;
    // A pending video of a voter: voters are not ranked.
    store.create_video(new_video(voters[0])).await.unwrap();
    for (video, n) in [(zoe1, 2), (zoe2, 1), (ana1, 2), (bea1, 2)] {
        for voter in &voters[..n] {
            store.vote(video, *voter).await.unwrap();
        }
    }

    let (rows, total) = store.rankings(None, Page::new(1, 10)).await.unwrap();
    let names: Vec<(&str, i64)> = rows.iter().map(|r| (r.first_name.as_str(), r.votes)).collect();
    assert_eq!(names, vec![("Zoe", 3), ("Ana", 2), ("Bea", 2), ("Carl", 0)], "ties in name order");
    assert_eq!(total, 4);

    let (rows, total) = store.rankings(Some("CALI"), Page::new(1, 10)).await.unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.first_name.as_str()).collect();
    assert_eq!(names, vec!["Zoe", "Bea", "Carl"], "the city filter ignores case");
    assert_eq!(total, 3);
    assert_eq!(rows[0].city, "Cali");
    assert_eq!(rows[0].user_id, zoe);

    let (page2, total) = store.rankings(None, Page::new(2, 3)).await.unwrap();
    assert_eq!(page2.iter().map(|r| r.first_name.as_str()).collect::<Vec<_>>(), vec!["Carl"]);
    assert_eq!(total, 4);
    let (empty, _) = store.rankings(None, Page::new(3, 3)).await.unwrap();
    assert!(empty.is_empty());
    let (none, total) = store.rankings(Some("Lima"), Page::new(1, 10)).await.unwrap();
    assert!(none.is_empty() && total == 0);
}

async fn public_listing_shows_completed_videos_only(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let fan = user(&store, "fan@example.com", "Fan", "Cali").await;
    let mut completed = Vec::new();
    for _ in 0..3 {
        completed.push(completed_video(&store, owner).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store.create_video(new_video(owner)).await.unwrap();
    store.vote(completed[0], fan).await.unwrap();

    let page1 = store.public_videos(Page::new(1, 2)).await.unwrap();
    let page2 = store.public_videos(Page::new(2, 2)).await.unwrap();
    let ids: Vec<Uuid> = page1.iter().chain(&page2).map(|v| v.id).collect();
    assert_eq!(ids, vec![completed[2], completed[1], completed[0]], "newest first, across pages");
    let oldest = &page2[0];
    assert_eq!((oldest.votes, oldest.first_name.as_str(), oldest.city.as_str()), (1, "Owner", "Cali"));
    assert_eq!(oldest.processed_key.as_deref(), Some(format!("processed/{}.mp4", completed[0]).as_str()));
    assert_eq!(Page::new(0, 1000), Page::new(1, Page::MAX_SIZE), "pages are bounded");
}

async fn the_sweep_finds_confirmed_uploads_that_were_never_enqueued(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let lost = store.create_video(new_video(owner)).await.unwrap().id;
    let queued = store.create_video(new_video(owner)).await.unwrap().id;
    store.mark_enqueued(queued).await.unwrap();
    let abandoned = store.create_video(NewVideo { original_size: None, ..new_video(owner) }).await.unwrap().id;
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(store.unqueued_videos(later, 10).await.unwrap(), vec![lost]);
    let earlier = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert!(store.unqueued_videos(earlier, 10).await.unwrap().is_empty(), "recent uploads are left to the web");

    // A direct upload whose file never came is found, and only such a row can be removed as one.
    let found: Vec<Uuid> = store.abandoned_uploads(later, 10).await.unwrap().iter().map(|v| v.id).collect();
    assert_eq!(found, vec![abandoned]);
    assert!(store.abandoned_uploads(earlier, 10).await.unwrap().is_empty(), "recent ones may still arrive");
    assert!(!store.delete_abandoned_upload(lost).await.unwrap(), "a confirmed upload is not abandoned");
    assert!(store.delete_abandoned_upload(abandoned).await.unwrap());
    assert!(store.video(abandoned).await.unwrap().is_none());
    assert!(store.video(lost).await.unwrap().is_some());
}

async fn migrations_run_twice_without_harm(db: Db) {
    db.migrate().await.unwrap();
    let store = SqlStore::new(db.clone());
    store.ping().await.unwrap();
    user(&store, "a@example.com", "A", "Cali").await;
    db.migrate().await.unwrap();
    assert!(store.user_by_email("a@example.com").await.unwrap().is_some());
}

async fn the_sweep_finds_processing_rows_whose_attempt_died_once_per_window(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let stuck = store.create_video(new_video(owner)).await.unwrap().id;
    store.mark_enqueued(stuck).await.unwrap();
    let StartOutcome::Started { .. } = store.start_processing(stuck, LIVE).await.unwrap() else { panic!() };
    let beating = store.create_video(new_video(owner)).await.unwrap().id;
    let StartOutcome::Started { attempt, .. } = store.start_processing(beating, LIVE).await.unwrap() else { panic!() };
    let pending = store.create_video(new_video(owner)).await.unwrap().id;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let window_start = OffsetDateTime::now_utc();
    assert!(store.set_progress(beating, attempt, Some(0.5)).await.unwrap());

    assert_eq!(
        store.stale_processing(window_start, 10).await.unwrap(),
        vec![stuck],
        "not the beating one, not {pending}"
    );
    assert!(
        store.stale_processing(window_start - time::Duration::minutes(1), 10).await.unwrap().is_empty(),
        "beat recently"
    );
    // Enqueued again (by the sweep): not found again until a whole window has passed.
    store.mark_enqueued(stuck).await.unwrap();
    assert!(store.stale_processing(window_start, 10).await.unwrap().is_empty());
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(store.stale_processing(later, 10).await.unwrap().len(), 2, "both look dead a window later");
}

async fn a_redrive_from_failed_starts_a_fresh_attempt_budget(db: Db) {
    let store = SqlStore::new(db);
    let owner = user(&store, "owner@example.com", "Owner", "Cali").await;
    let id = store.create_video(new_video(owner)).await.unwrap().id;
    for expected in 1..=2 {
        let StartOutcome::Started { attempt, video } = store.start_processing(id, STALE).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            (attempt, video.attempts_base),
            (expected, 0),
            "takeovers of dead attempts count against the budget"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(store.fail(id, 2, ErrorCode::WorkerLost, "attempts died", true).await.unwrap());
    let StartOutcome::Started { attempt, video } = store.start_processing(id, LIVE).await.unwrap() else { panic!() };
    assert_eq!((attempt, video.attempts_base, video.error_code.as_deref()), (3, 2, Some("worker-lost")));
    assert!(store.retry_later(id, attempt, ErrorCode::SinkFailed, "S3 away").await.unwrap());
    let StartOutcome::Started { video, .. } = store.start_processing(id, LIVE).await.unwrap() else { panic!() };
    assert_eq!((video.attempts, video.attempts_base), (4, 2), "a retry from pending keeps the budget");
}

/// A statement that hangs (a lock never released, a server that stops answering mid-query) is
/// cancelled by PostgreSQL after the pool's `statement_timeout`, so no caller, the lease
/// heartbeat least of all, waits on it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_hung_statement_is_cancelled_by_the_statement_timeout() {
    let (db, _) = anb_core::testing::postgres().await;
    let Db::Postgres(pool) = &db else { unreachable!() };
    let err =
        tokio::time::timeout(std::time::Duration::from_secs(60), sqlx::query("SELECT pg_sleep(120)").execute(pool))
            .await
            .expect("the statement ends well before its two minutes")
            .expect_err("it is cancelled");
    let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled (statement timeout): {err}");
}
