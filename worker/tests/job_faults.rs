//! The job path under faults, with the real store and queue behind fault-injecting wrappers:
//! whatever fails and whenever, every job ends recorded, with one output, and no message left
//! behind or dead-lettered for a fault that was not the job's.

mod support;

use anb_core::ErrorCode;
use std::time::Duration;

use anb_core::db::Db;
use anb_core::faults::Fault;
use anb_core::model::{StartOutcome, VideoStatus};
use anb_core::queue::redrive;
use anb_worker::{Outcome, WorkerOptions, MAX_ATTEMPTS};
use support::*;

anb_core::on_both_databases!(
    a_completion_the_database_refuses_once_is_retried_in_place,
    a_completion_that_cannot_be_recorded_is_finished_by_a_later_delivery,
    a_permanent_failure_that_cannot_be_recorded_is_recorded_by_a_later_delivery,
    a_start_the_database_refuses_does_not_spend_the_jobs_receives,
    a_lost_lease_while_the_database_heartbeat_works_is_taken_over_once,
    attempts_that_died_with_their_worker_end_in_the_dead_letter_queue_and_redrive_restores_the_budget,
    a_video_deleted_before_its_completion_is_recorded_leaves_no_output,
    an_attempt_taken_over_mid_run_publishes_nothing_and_the_new_one_finishes,
);

/// A short lease, so takeovers happen in seconds: stale after 3 s, end-of-job writes retried
/// for 2 s.
fn short_lease() -> WorkerOptions {
    lease(6)
}

/// A lease window of `secs`: an attempt is stale after half of it, end-of-job writes are
/// retried for a third of it.
fn lease(secs: u64) -> WorkerOptions {
    WorkerOptions { visibility: Duration::from_secs(secs), ..options() }
}

/// Heal the store's `method` `after` its first call: every call until then fails.
fn outage_from_first_call(rig: &Rig, method: &'static str, after: Duration) -> tokio::task::JoinHandle<()> {
    rig.faults.fail_next(method, 1_000);
    let faults = rig.faults.clone();
    tokio::spawn(async move {
        while faults.calls(method) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(after).await;
        faults.fail_next(method, 0);
    })
}

async fn a_completion_the_database_refuses_once_is_retried_in_place(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    rig.faults.fail_next("complete", 1);
    let outcomes = run_to_the_end(&rig, &rig.worker(short_lease()), id).await;
    assert_eq!(outcomes, vec![Outcome::Completed]);
    assert_eq!(rig.faults.calls("complete"), 2, "one refused, one retried");
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 1));
    assert_eq!(rig.outputs(), vec![format!("{id}-1.mp4")]);
}

async fn a_completion_that_cannot_be_recorded_is_finished_by_a_later_delivery(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // A duplicate of the message arrives beside it: before the fix it met the live attempt, was
    // deleted, and the video stayed `processing` for good once the completion failed.
    rig.enqueue(id).await;
    // The database is away for every try of the first attempt's completion (a 12 s lease: the
    // tries give up after 4 s), and back before the job is handed on (6 s later).
    let healer = outage_from_first_call(&rig, "complete", Duration::from_secs(5));
    let outcomes = run_to_the_end(&rig, &rig.worker(lease(12)), id).await;
    healer.await.unwrap();
    assert_eq!(count(&outcomes, &Outcome::Retry(ErrorCode::DatabaseUnavailable)), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, &Outcome::Completed), 1, "{outcomes:?}");
    assert!(count(&outcomes, &Outcome::Deferred) >= 1, "the duplicate waited for the live attempt: {outcomes:?}");
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 2), "redone by a second attempt");
    assert_eq!(rig.outputs(), vec![format!("{id}-2.mp4")], "one output: the first attempt's unrecorded one is gone");
    assert_eq!(video.processed_key, Some(format!("processed/{id}-2.mp4")));
    assert_eq!(rig.messages().await, (0, 0), "nothing left, nothing dead-lettered");
}

async fn a_permanent_failure_that_cannot_be_recorded_is_recorded_by_a_later_delivery(db: Db) {
    let rig = Rig::new(db).await;
    std::fs::write(rig.dir.path().join("notes.mp4"), "not a video at all\n".repeat(500)).unwrap();
    let id = rig.upload(&rig.dir.path().join("notes.mp4")).await;
    let healer = outage_from_first_call(&rig, "fail", Duration::from_secs(5));
    let outcomes = run_to_the_end(&rig, &rig.worker(lease(12)), id).await;
    healer.await.unwrap();
    assert_eq!(outcomes.first(), Some(&Outcome::Retry(ErrorCode::DatabaseUnavailable)), "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Failed(ErrorCode::InvalidInput)), "{outcomes:?}");
    let video = rig.video(id).await;
    assert_eq!(
        (video.status, video.error_code.as_deref(), video.error_retryable),
        (VideoStatus::Failed, Some("invalid-input"), false)
    );
    assert_eq!(rig.messages().await, (0, 0));
}

async fn a_start_the_database_refuses_does_not_spend_the_jobs_receives(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // More refusals than the queue allows receives: each hands the job on as a fresh message.
    let refusals = MAX_ATTEMPTS + 3;
    rig.faults.fail_next("start_processing", refusals);
    let options = WorkerOptions { retry_backoff: Duration::from_millis(100), ..short_lease() };
    let outcomes = run_to_the_end(&rig, &rig.worker(options), id).await;
    let mut expected = vec![Outcome::Retry(ErrorCode::DatabaseUnavailable); refusals as usize];
    expected.push(Outcome::Completed);
    assert_eq!(outcomes, expected);
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 1), "only the attempt that ran is counted");
    assert_eq!(rig.messages().await, (0, 0), "nothing dead-lettered");
}

async fn a_lost_lease_while_the_database_heartbeat_works_is_taken_over_once(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "long.mp4", 20, "320x240")).await;
    // The queue says the lease is gone at the first extension; the row's heartbeat was fine.
    rig.faults.fail_next_with("change_visibility", 1, Fault::LeaseLost);
    let worker = rig.worker_with(short_lease(), SLOW_PIPELINE);
    let outcomes = run_to_the_end(&rig, &worker, id).await;
    assert_eq!(outcomes.first(), Some(&Outcome::LeaseLost), "{outcomes:?}");
    assert_eq!(count(&outcomes, &Outcome::Completed), 1, "{outcomes:?}");
    // The abandoned delivery comes back when its lease ends (a redelivery: renewed), waits while
    // the abandoned attempt still looks alive, then takes over.
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::LeaseLost | Outcome::Renewed | Outcome::Deferred | Outcome::Completed)),
        "{outcomes:?}"
    );
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 2));
    assert_eq!(rig.outputs(), vec![format!("{id}-2.mp4")], "the abandoned attempt left nothing");
    assert_eq!(rig.messages().await, (0, 0));
}

async fn attempts_that_died_with_their_worker_end_in_the_dead_letter_queue_and_redrive_restores_the_budget(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // Workers that start the job and die without a word (killed by the file, say): each start
    // takes over the dead one before it.
    for _ in 0..MAX_ATTEMPTS {
        assert!(matches!(
            rig.real.store.start_processing(id, Duration::ZERO).await.unwrap(),
            StartOutcome::Started { .. }
        ));
    }
    // Stale after half a lease of 1 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let worker = rig.worker(WorkerOptions { visibility: Duration::from_secs(1), ..options() });
    let outcomes = rig.run_until_dead_lettered(&worker).await;
    assert_eq!(outcomes, vec![Outcome::DeadLettered(ErrorCode::WorkerLost)]);
    let video = rig.video(id).await;
    assert_eq!(
        (video.status, video.error_code.as_deref(), video.error_retryable),
        (VideoStatus::Failed, Some("worker-lost"), true)
    );
    assert!(rig.outputs().is_empty());

    // The operator redrives it: the budget starts again and the job completes.
    assert_eq!(redrive(rig.real.dead_letters.as_deref().unwrap(), rig.real.queue.as_ref(), 10).await.unwrap(), 1);
    let outcomes = run_to_the_end(&rig, &rig.worker(options()), id).await;
    assert_eq!(outcomes, vec![Outcome::Completed]);
    let video = rig.video(id).await;
    assert_eq!(
        (video.status, video.attempts, video.attempts_base),
        (VideoStatus::Completed, MAX_ATTEMPTS as i32 + 2, MAX_ATTEMPTS as i32 + 1)
    );
    assert_eq!(rig.messages().await, (0, 0));
    assert_eq!(rig.outputs(), vec![format!("{id}-{}.mp4", MAX_ATTEMPTS + 2)]);
}

async fn a_video_deleted_before_its_completion_is_recorded_leaves_no_output(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // The first try of the completion fails; before the retry (200 ms later) the owner deletes
    // the video.
    rig.faults.fail_next("complete", 1);
    let (faults, store) = (rig.faults.clone(), rig.real.store.clone());
    let deleter = tokio::spawn(async move {
        while faults.calls("complete") == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(store.delete_video(id).await.unwrap().is_some());
    });
    let queue = rig.real.queue.clone();
    let outcomes = run_until(&rig.worker(short_lease()), || {
        let queue = queue.clone();
        async move { queue.depth().await.map(|d| d.visible + d.in_flight == 0).unwrap_or(false) }
    })
    .await;
    deleter.await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Superseded]);
    assert!(rig.outputs().is_empty(), "the finished output went with the video: {:?}", rig.outputs());
}

async fn an_attempt_taken_over_mid_run_publishes_nothing_and_the_new_one_finishes(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "long.mp4", 20, "320x240")).await;
    let store = rig.real.store.clone();
    let usurper = tokio::spawn(async move {
        // Once the worker's attempt runs, a second attempt takes the row (as one does when the
        // first looked dead while the database was away).
        while store.video(id).await.unwrap().unwrap().status != VideoStatus::Processing {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(matches!(
            store.start_processing(id, Duration::ZERO).await.unwrap(),
            StartOutcome::Started { attempt: 2, .. }
        ));
    });
    let outcomes = run_to_the_end(&rig, &rig.worker_with(short_lease(), SLOW_PIPELINE), id).await;
    usurper.await.unwrap();
    // The first run notices at its next heartbeat and stops; its message comes back, waits until
    // the usurping attempt (which runs nowhere) looks dead, and a third attempt completes.
    assert_eq!(outcomes.first(), Some(&Outcome::LeaseLost), "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Completed), "{outcomes:?}");
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 3));
    assert_eq!(rig.outputs(), vec![format!("{id}-3.mp4")], "the stopped run published nothing");
}
