//! The job queue's conformance suite, run on SQS (moto) and on the embedded queue over
//! PostgreSQL and over SQLite. Timers are real, so visibility timeouts are short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anb_core::queue::{redrive, EmbeddedQueue, JobQueue, QueueError, MAX_RECEIVES};
use rand::Rng;

type Queues = (Arc<dyn JobQueue>, Arc<dyn JobQueue>);

async fn embedded(db: anb_core::db::Db) -> Queues {
    let live = EmbeddedQueue::new(db, "jobs").with_dead_letter("jobs-dead", MAX_RECEIVES);
    let dead = live.dead_letter_queue().expect("has a dead-letter queue");
    (Arc::new(live), Arc::new(dead))
}

/// Generate `sqs::name`, `embedded_postgres::name` and `embedded_sqlite::name` for each test
/// `fn name(queues: Queues, backend: &str)`.
macro_rules! on_every_queue {
    ($($name:ident),* $(,)?) => {
        mod sqs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let config = anb_core::testing::aws_config().await;
                    let (live, dead) = anb_core::testing::sqs_queues(&config).await;
                    super::$name((std::sync::Arc::new(live), std::sync::Arc::new(dead)), "sqs").await
                }
            )*
        }
        mod embedded_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (db, _) = anb_core::testing::postgres().await;
                    super::$name(super::embedded(db).await, "embedded").await
                }
            )*
        }
        mod embedded_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = anb_core::testing::sqlite(dir.path()).await;
                    super::$name(super::embedded(db).await, "embedded").await
                }
            )*
        }
    };
}

on_every_queue!(
    send_receive_delete_and_depth,
    a_long_poll_returns_when_a_message_arrives,
    an_unacknowledged_message_comes_back_after_its_visibility_timeout,
    extending_the_lease_keeps_a_message_hidden_and_zero_hands_it_back,
    after_three_receives_a_message_is_dead_lettered_and_redrive_brings_it_back,
    four_consumers_acknowledge_two_hundred_messages_exactly_once,
    a_delayed_message_stays_hidden_until_its_delay_and_starts_with_a_fresh_count,
);

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(30);

async fn send_receive_delete_and_depth((q, _): Queues, _: &str) {
    for i in 0..3 {
        q.send(&format!(r#"{{"video_id": "{i}"}}"#)).await.unwrap();
    }
    assert_eq!(q.depth().await.unwrap().visible, 3);
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = q.receive(10, SHORT, LONG).await.unwrap();
        assert!(!batch.is_empty(), "all three arrive");
        got.extend(batch);
    }
    let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, [r#"{"video_id": "0"}"#, r#"{"video_id": "1"}"#, r#"{"video_id": "2"}"#]);
    assert!(got.iter().all(|m| m.receive_count == 1 && m.sent_at_ms > 0 && !m.message_id.is_empty()));
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 3));
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty(), "in flight: nothing to receive");
    for m in &got {
        q.delete(&m.receipt).await.unwrap();
    }
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
}

async fn a_long_poll_returns_when_a_message_arrives((q, _): Queues, _: &str) {
    let receiver = {
        let q = q.clone();
        tokio::spawn(async move { q.receive(1, Duration::from_secs(10), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.send("late").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(15), receiver).await.expect("bounded").unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "late");
}

async fn an_unacknowledged_message_comes_back_after_its_visibility_timeout((q, _): Queues, backend: &str) {
    q.send("job").await.unwrap();
    let first = q.receive(1, SHORT, SHORT).await.unwrap().pop().expect("delivered");
    let again = receive_one(&*q, Duration::from_secs(5)).await.expect("back after its visibility timeout");
    assert_eq!((again.body.as_str(), again.receive_count), ("job", 2));
    assert_eq!(again.message_id, first.message_id);
    if backend == "embedded" {
        // SQS does not always refuse an old receipt; the embedded queue does.
        assert!(matches!(q.delete(&first.receipt).await, Err(QueueError::LeaseLost)));
        assert!(matches!(q.change_visibility(&first.receipt, LONG).await, Err(QueueError::LeaseLost)));
    }
    q.delete(&again.receipt).await.unwrap();
    assert!(q.receive(1, Duration::from_millis(1500), SHORT).await.unwrap().is_empty(), "deleted for good");
}

async fn extending_the_lease_keeps_a_message_hidden_and_zero_hands_it_back((q, _): Queues, _: &str) {
    q.send("job").await.unwrap();
    let m = receive_one(&*q, Duration::from_secs(2)).await.expect("delivered");
    q.change_visibility(&m.receipt, Duration::from_secs(4)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(q.receive(1, Duration::ZERO, SHORT).await.unwrap().is_empty(), "still leased after the first second");
    q.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    let back = receive_one(&*q, Duration::from_secs(2)).await.expect("handed back at once");
    assert_eq!(back.receive_count, 2);
}

async fn after_three_receives_a_message_is_dead_lettered_and_redrive_brings_it_back((q, dead): Queues, _: &str) {
    q.send("poison").await.unwrap();
    for n in 1..=MAX_RECEIVES {
        let m = receive_one(&*q, Duration::from_secs(5)).await.expect("delivered again");
        assert_eq!(m.receive_count, n);
        // Not acknowledged: hand it straight back, as a worker does after a transient failure.
        q.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    }
    // The move to the dead-letter queue happens on the next receive.
    assert!(q.receive(1, Duration::from_secs(2), SHORT).await.unwrap().is_empty());
    let dead_letter = receive_one(&*dead, Duration::from_secs(5)).await.expect("in the dead-letter queue");
    assert_eq!(dead_letter.body, "poison");
    dead.change_visibility(&dead_letter.receipt, Duration::ZERO).await.unwrap();

    assert_eq!(redrive(&*dead, &*q, 100).await.unwrap(), 1);
    let back = receive_one(&*q, Duration::from_secs(5)).await.expect("redriven");
    assert_eq!((back.body.as_str(), back.receive_count), ("poison", 1));
    assert!(dead.receive(1, Duration::ZERO, SHORT).await.unwrap().is_empty());
}

async fn four_consumers_acknowledge_two_hundred_messages_exactly_once((q, _): Queues, _: &str) {
    const MESSAGES: usize = 200;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(20) {
        futures_util::future::try_join_all(chunk.iter().map(|i| {
            let q = q.clone();
            async move { q.send(&format!("job-{i}")).await }
        }))
        .await
        .unwrap();
    }
    let acked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let redelivered: Arc<Mutex<usize>> = Arc::default();
    let lease = Duration::from_secs(3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let consumers = (0..4).map(|consumer| {
        let (q, acked, redelivered) = (q.clone(), acked.clone(), redelivered.clone());
        tokio::spawn(async move {
            loop {
                if acked.lock().unwrap().len() >= MESSAGES || tokio::time::Instant::now() > deadline {
                    return;
                }
                let batch = q.receive(4, Duration::from_millis(500), lease).await.unwrap();
                if consumer == 3 && !batch.is_empty() {
                    // This consumer dies holding its first batch: nothing is acknowledged, and
                    // the messages must come back to the others when the lease runs out.
                    return;
                }
                for m in batch {
                    let (pause, extensions) = {
                        let mut rng = rand::rng();
                        (Duration::from_millis(rng.random_range(0..40)), rng.random_range(0..3))
                    };
                    for _ in 0..extensions {
                        tokio::time::sleep(pause).await;
                        q.change_visibility(&m.receipt, lease).await.unwrap();
                    }
                    q.delete(&m.receipt).await.unwrap();
                    if m.receive_count > 1 {
                        *redelivered.lock().unwrap() += 1;
                    }
                    *acked.lock().unwrap().entry(m.body).or_default() += 1;
                }
            }
        })
    });
    for consumer in futures_util::future::join_all(consumers).await {
        consumer.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(acked.len(), MESSAGES, "every message acknowledged, none lost");
    assert!(
        acked.values().all(|&n| n == 1),
        "each exactly once: {:?}",
        acked.iter().filter(|(_, &n)| n != 1).collect::<Vec<_>>()
    );
    assert!(*redelivered.lock().unwrap() > 0, "the dropped consumer's messages came back to the others");
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
}

/// The next message, waiting up to `within` (in long polls of at most a second).
async fn receive_one(q: &dyn JobQueue, within: Duration) -> Option<anb_core::queue::Received> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(m) = q.receive(1, SHORT, SHORT).await.unwrap().pop() {
            return Some(m);
        }
    }
    None
}

async fn a_delayed_message_stays_hidden_until_its_delay_and_starts_with_a_fresh_count((q, _): Queues, _: &str) {
    q.send_after("later", Duration::from_secs(2)).await.unwrap();
    assert!(q.receive(1, Duration::from_millis(800), SHORT).await.unwrap().is_empty(), "hidden during its delay");
    let m = receive_one(&*q, Duration::from_secs(6)).await.expect("visible after its delay");
    assert_eq!((m.body.as_str(), m.receive_count), ("later", 1));
    q.delete(&m.receipt).await.unwrap();
}
