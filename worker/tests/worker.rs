//! The worker end to end: a real database, a folder blob store, the embedded queue and real
//! GStreamer on generated clips. Faults are real too: a storage path that cannot be written.

mod support;

use anb_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use anb_core::blob::BlobKey;
use anb_core::db::Db;
use anb_core::model::VideoStatus;
use anb_core::queue::redrive;
use anb_worker::protection::ScaleInProtection;
use anb_worker::{Outcome, WorkerOptions, MAX_ATTEMPTS};
use support::*;
use uuid::Uuid;

anb_core::on_both_databases!(
    uploads_are_processed_and_duplicates_unknowns_and_bad_inputs_are_settled_once,
    a_transient_failure_is_retried_then_dead_lettered_and_redrive_finishes_it,
    shutdown_hands_a_running_job_back_at_once,
    the_lease_is_extended_while_the_job_progresses_and_slots_bound_the_receives,
    a_pipeline_that_stops_making_progress_is_aborted_retried_then_dead_lettered,
    a_busy_task_asks_the_ecs_agent_for_scale_in_protection_and_releases_it_when_idle,
    a_poster_that_cannot_be_stored_does_not_fail_the_video,
);

/// A loopback stand-in for the ECS agent's task-protection endpoint: answers 200 to every
/// request and keeps each request's method, path and JSON body.
async fn fake_ecs_agent() -> (String, Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            let mut first = head.lines().next().unwrap_or_default().split_whitespace();
                            let (method, path) = (
                                first.next().unwrap_or_default().to_string(),
                                first.next().unwrap_or_default().to_string(),
                            );
                            record.lock().unwrap().push((method, path, serde_json::from_str(body).unwrap_or_default()));
                            let _ = conn
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (base, seen)
}

async fn uploads_are_processed_and_duplicates_unknowns_and_bad_inputs_are_settled_once(db: Db) {
    let rig = Rig::new(db).await;
    let good = rig.upload(&clip(rig.dir.path(), "good.mp4", 4, "320x240")).await;
    std::fs::write(rig.dir.path().join("notes.mp4"), "not a video at all\n".repeat(500)).unwrap();
    let bad = rig.upload(&rig.dir.path().join("notes.mp4")).await;
    rig.enqueue(good).await; // a duplicate delivery
    rig.enqueue(Uuid::new_v4()).await; // a video that does not exist
    rig.backends.queue.send("{not json").await.unwrap();

    let queue = rig.backends.queue.clone();
    let worker = rig.worker(options());
    let outcomes = run_until(&worker, || {
        let queue = queue.clone();
        async move { queue.depth().await.map(|d| d.visible + d.in_flight == 0).unwrap_or(false) }
    })
    .await;

    let done = rig.video(good).await;
    assert_eq!(
        (done.status, done.attempts, done.progress),
        (VideoStatus::Completed, 1, 1.0),
        "processed once: {done:?}"
    );
    assert_eq!(
        done.processed_key.as_deref(),
        Some(format!("processed/{good}-1.mp4").as_str()),
        "the first attempt's output"
    );
    let output = rig.backends.blobs.open(&BlobKey::new(format!("processed/{good}-1.mp4")).unwrap()).await.unwrap();
    assert_eq!(&output.read_at(4, 4).await.unwrap()[..], b"ftyp");
    // The pipeline's poster side output, stored beside the output and recorded with the video.
    assert_eq!(done.poster_key.as_deref(), Some(format!("posters/{good}-1.jpg").as_str()));
    let poster = rig.backends.blobs.open(&BlobKey::new(format!("posters/{good}-1.jpg")).unwrap()).await.unwrap();
    assert_eq!(&poster.read_at(0, 3).await.unwrap()[..], &[0xff, 0xd8, 0xff], "a JPEG");

    let failed = rig.video(bad).await;
    assert_eq!(
        (failed.status, failed.error_code.as_deref(), failed.attempts),
        (VideoStatus::Failed, Some("invalid-input"), 1)
    );
    assert!(!failed.error_retryable);
    assert!(!rig.outputs().iter().any(|name| name.starts_with(&bad.to_string())), "no output for the bad input");

    assert_eq!(count(&outcomes, &Outcome::Completed), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, &Outcome::Failed(ErrorCode::InvalidInput)), 1, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, Outcome::Skipped(_))).count(),
        3,
        "duplicate, unknown, malformed: {outcomes:?}"
    );
    // The duplicate is received beside the original (two slots): it meets the live attempt and
    // is deferred until that attempt is done, then settled as a no-op.
    let deferred = count(&outcomes, &Outcome::Deferred);
    assert!(deferred <= 1, "{outcomes:?}");
    assert_eq!(outcomes.len(), 5 + deferred, "{outcomes:?}");
    assert_eq!(rig.outputs(), vec![format!("{good}-1.mp4")], "one output");
}

async fn a_transient_failure_is_retried_then_dead_lettered_and_redrive_finishes_it(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    // A real storage fault: `processed` is a file, so no output can be written under it.
    let blocker = rig.dir.path().join("blobs/processed");
    std::fs::write(&blocker, "in the way").unwrap();

    let worker = rig.worker(options());
    let outcomes = rig.run_until_dead_lettered(&worker).await;
    // Each attempt's receive is fresh (a failed attempt hands the job on); the budget is the
    // attempts in the row, and the last one records the failure and dead-letters the message.
    assert_eq!(outcomes, retried_then_dead_lettered(ErrorCode::SinkFailed));
    assert_eq!(rig.messages().await, (0, 1), "only the dead-letter queue holds it");
    let failed = rig.video(id).await;
    assert_eq!((failed.status, failed.error_code.as_deref()), (VideoStatus::Failed, Some("sink-failed")));
    assert!(failed.error_retryable, "a transient failure may be redriven");
    assert_eq!(failed.attempts, MAX_ATTEMPTS as i32);

    // The fault is fixed; an operator redrives the dead letters; the job completes.
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(
        redrive(rig.backends.dead_letters.as_deref().unwrap(), rig.backends.queue.as_ref(), 10).await.unwrap(),
        1
    );
    let worker = rig.worker(options());
    let store = rig.backends.store.clone();
    run_until(&worker, || {
        let store = store.clone();
        async move { store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed }
    })
    .await;
    assert_eq!(rig.video(id).await.attempts, MAX_ATTEMPTS as i32 + 1);
}

async fn shutdown_hands_a_running_job_back_at_once(db: Db) {
    let rig = Rig::new(db).await;
    // Long enough to still be running when the worker is told to stop.
    let id = rig.upload(&clip(rig.dir.path(), "long.mp4", 60, "320x240")).await;
    let options = WorkerOptions { shutdown_grace: Duration::ZERO, ..options() };
    let worker = rig.worker_with(options, SLOW_PIPELINE);
    let store = rig.backends.store.clone();
    let outcomes = run_until(&worker, || {
        let store = store.clone();
        async move { store.video(id).await.unwrap().unwrap().status == VideoStatus::Processing }
    })
    .await;
    assert_eq!(outcomes, vec![Outcome::Released]);
    let video = rig.video(id).await;
    assert_eq!((video.status, video.error_code.as_deref()), (VideoStatus::Pending, Some("worker-shutdown")));
    let depth = rig.backends.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 0), "visible again at once, not after the lease");
    assert!(rig.outputs().is_empty(), "nothing published: {:?}", rig.outputs());
}

async fn the_lease_is_extended_while_the_job_progresses_and_slots_bound_the_receives(db: Db) {
    let rig = Rig::new(db).await;
    let first = rig.upload(&clip(rig.dir.path(), "a.mp4", 60, "320x240")).await;
    let others = [
        rig.upload(&clip(rig.dir.path(), "b.mp4", 3, "160x120")).await,
        rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await,
    ];
    // One slot and a 2-second lease: the first job outlives its lease many times over unless
    // the heartbeat extends it, and the other two must wait in the queue, not in this worker.
    let options = WorkerOptions { concurrency: 1, visibility: Duration::from_secs(2), ..options() };
    let worker = rig.worker_with(options, SLOW_PIPELINE);
    let (queue, store) = (rig.backends.queue.clone(), rig.backends.store.clone());
    let max_in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let (queue, max_in_flight) = (queue.clone(), max_in_flight.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(d) = queue.depth().await {
                    max_in_flight.fetch_max(d.in_flight, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let outcomes = run_until(&worker, || {
        let store = store.clone();
        async move {
            let mut all = true;
            for id in [first, others[0], others[1]] {
                all &= store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed;
            }
            all
        }
    })
    .await;
    watcher.abort();
    assert_eq!(outcomes, vec![Outcome::Completed; 3]);
    for id in [first, others[0], others[1]] {
        assert_eq!(rig.video(id).await.attempts, 1, "each processed once: the lease never lapsed");
    }
    let long = rig.video(first).await;
    let took = long.processed_at.unwrap() - long.uploaded_at;
    assert!(
        took > time::Duration::seconds(3),
        "the first job must outlive its 2 s lease for this test to mean anything: {took}"
    );
    assert_eq!(max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 1, "never more messages than slots");
}

async fn a_pipeline_that_stops_making_progress_is_aborted_retried_then_dead_lettered(db: Db) {
    let rig = Rig::new(db).await;
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    let options = WorkerOptions { stall_timeout: Duration::from_secs(2), ..options() };
    let worker = rig.worker_with(options, STALLING_PIPELINE);
    let outcomes = rig.run_until_dead_lettered(&worker).await;
    assert_eq!(outcomes, retried_then_dead_lettered(ErrorCode::PipelineStalled));
    let video = rig.video(id).await;
    assert_eq!((video.status, video.error_code.as_deref()), (VideoStatus::Failed, Some("pipeline-stalled")));
    assert_eq!(video.attempts, MAX_ATTEMPTS as i32);
    assert!(rig.outputs().is_empty(), "nothing published: {:?}", rig.outputs());
}

async fn a_busy_task_asks_the_ecs_agent_for_scale_in_protection_and_releases_it_when_idle(db: Db) {
    let rig = Rig::new(db).await;
    let (agent, seen) = fake_ecs_agent().await;
    let protection = ScaleInProtection::new(Some(format!("{agent}/task-protection/v1/state")));
    let id = rig.upload(&clip(rig.dir.path(), "c.mp4", 3, "160x120")).await;
    let worker = rig.worker_protected(options(), PIPELINE, protection);
    let store = rig.backends.store.clone();
    let seen_by_stop = seen.clone();
    let outcomes = run_until(&worker, || {
        let (store, seen) = (store.clone(), seen_by_stop.clone());
        async move {
            store.video(id).await.unwrap().unwrap().status == VideoStatus::Completed && seen.lock().unwrap().len() >= 2
        }
    })
    .await;
    assert_eq!(outcomes, vec![Outcome::Completed]);
    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(&str, &str, serde_json::Value)> =
        seen.iter().map(|(m, p, b)| (m.as_str(), p.as_str(), b.clone())).collect();
    assert_eq!(
        calls,
        vec![
            (
                "PUT",
                "/task-protection/v1/state",
                serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": 60})
            ),
            ("PUT", "/task-protection/v1/state", serde_json::json!({"ProtectionEnabled": false})),
        ],
        "protected while the job ran, released when idle"
    );
}

// The poster is an extra: when its storage fails (here `posters` is a file where the folder
// store needs a folder), the video still completes, once, without a poster, and its message
// is settled.
async fn a_poster_that_cannot_be_stored_does_not_fail_the_video(db: Db) {
    let rig = Rig::new(db).await;
    std::fs::create_dir_all(rig.dir.path().join("blobs")).unwrap();
    std::fs::write(rig.dir.path().join("blobs/posters"), "in the way").unwrap();
    let id = rig.upload(&clip(rig.dir.path(), "good.mp4", 3, "320x240")).await;
    let outcomes = run_to_the_end(&rig, &rig.worker(options()), id).await;
    assert_eq!(outcomes, vec![Outcome::Completed]);
    let video = rig.video(id).await;
    assert_eq!((video.status, video.attempts), (VideoStatus::Completed, 1));
    assert_eq!(video.processed_key.as_deref(), Some(format!("processed/{id}-1.mp4").as_str()));
    assert_eq!(video.poster_key, None, "no poster recorded that is not stored");
    assert_eq!(rig.messages().await, (0, 0), "settled");
}
