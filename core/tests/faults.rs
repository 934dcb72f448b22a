//! Faults on loopback: an S3 emulator that stops answering mid-upload, and a PostgreSQL that is
//! briefly unreachable. Each test owns what it breaks (its own moto process, its own TCP proxy in
//! front of the shared PostgreSQL), so nothing else running at the same time is disturbed.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anb_core::blob::{BlobKey, BlobStore, S3Options, StorageError};
use anb_core::db::Db;
use anb_core::model::NewUser;
use anb_core::store::{SqlStore, Store, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulator_that_stops_mid_upload_gives_storage_unavailable_within_the_timeout() {
    let moto = anb_core::testing::OwnMoto::start();
    let timeout = Duration::from_secs(3);
    let config = moto.aws_config(timeout).await;
    let store =
        anb_core::testing::s3_store(&config, S3Options { part_size: 5 << 20, timeout, ..S3Options::default() }).await;

    // A body that sends 6 MiB (the first part goes up, the multipart upload exists), then
    // freezes the emulator, then carries on.
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let (freeze_tx, mut freeze_rx) = watch::channel(false);
    let body = futures_util::stream::iter(0..20)
        .then(move |i| {
            let chunk = chunk.clone();
            let freeze = freeze_tx.clone();
            async move {
                if i == 6 {
                    let _ = freeze.send(true);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(chunk)
            }
        })
        .boxed();
    let freezer = {
        let pid = moto.pid();
        tokio::spawn(async move {
            freeze_rx.wait_for(|f| *f).await.unwrap();
            // SIGSTOP: the port stays open and connections hang, the worst case for a client.
            Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
        })
    };
    let started = Instant::now();
    let put = tokio::spawn({
        let store = store.clone();
        async move { store.put_stream(&BlobKey::new("uploads/frozen.mp4").unwrap(), body).await }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(60), put).await.expect("the put ends").expect("no panic");
    freezer.await.unwrap();
    let waited = started.elapsed();
    let err = outcome.expect_err("the put fails");
    eprintln!("failed after {waited:?}: {err}");
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert_eq!(err.code(), anb_core::ErrorCode::StorageUnavailable);
    assert!(err.is_retryable());
    // The bound is the configured timeout per call; allow the body's own pace and scheduling.
    assert!(waited < timeout * 3, "failed after {waited:?} with a {timeout:?} timeout");
}

/// A TCP proxy to `target` that can cut every connection and refuse new ones, then recover.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, up_rx) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !*up_rx.borrow() {
                    continue; // dropped: the connection is refused
                }
                let mut down = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {} // cut: both sockets close
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

fn user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: "x".into(),
        first_name: "A".into(),
        last_name: "B".into(),
        city: "Cali".into(),
        country: "Colombia".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_briefly_unreachable_is_a_retryable_error_and_the_store_recovers() {
    let (db, url) = anb_core::testing::postgres().await;
    db.close().await;
    let target: SocketAddr = {
        let host_port = url.split('@').nth(1).unwrap().split('/').next().unwrap();
        tokio::net::lookup_host(host_port).await.unwrap().next().unwrap()
    };
    let proxy = Proxy::start(target).await;
    let through_proxy = url.replace(&format!("{}:{}", target.ip(), target.port()), &proxy.addr.to_string());
    let store = Arc::new(SqlStore::new(Db::connect(&through_proxy).await.unwrap()));
    store.create_user(user("before@example.com")).await.unwrap();

    proxy.set_up(false);
    let started = Instant::now();
    let err = store.create_user(user("during@example.com")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code(), anb_core::ErrorCode::DatabaseUnavailable);
    assert!(started.elapsed() < Duration::from_secs(30), "an answer, not a hang: {:?}", started.elapsed());
    assert!(store.ping().await.unwrap_err().is_retryable());

    proxy.set_up(true);
    // Back: the pool replaces its dead connections and carries on without a restart.
    store.create_user(user("after@example.com")).await.unwrap();
    assert!(store.user_by_email("before@example.com").await.unwrap().is_some());
    assert!(store.user_by_email("during@example.com").await.unwrap().is_none(), "the failed write did not happen");
}
