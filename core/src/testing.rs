//! Real services for tests (feature `testing`): a fresh PostgreSQL database per call, a SQLite
//! file, a fresh bucket and queues in moto. `make test` starts the services and exports:
//! `TEST_ANB_POSTGRES_URL` (an admin URL), `AWS_ENDPOINT_URL` and dummy credentials. Without
//! them these helpers fail loudly: a test that needs a service never passes by skipping.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use uuid::Uuid;

use crate::blob::{S3Options, S3Store};
use crate::db::Db;
use crate::queue::{SqsQueue, MAX_RECEIVES};

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_ANB_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A new, empty, migrated PostgreSQL database (`anb_t_*`; `make test` drops them afterwards).
/// Returns its URL too, for tests that open more connections.
pub async fn postgres() -> (Db, String) {
    let admin_url = postgres_admin_url();
    let admin = Db::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} (set TEST_ANB_POSTGRES_URL, or run `make test`): {e}"));
    let name = format!("anb_t_{}", Uuid::new_v4().simple());
    let Db::Postgres(pool) = &admin else { panic!("TEST_ANB_POSTGRES_URL is not a PostgreSQL URL") };
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(pool).await.expect("create a test database");
    admin.close().await;
    let url = with_database(&admin_url, &name);
    let db = Db::connect(&url).await.expect("connect to the test database");
    db.migrate().await.expect("migrate the test database");
    (db, url)
}

/// A new, migrated SQLite database in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}/anb.db", dir.display())).await.expect("open SQLite");
    db.migrate().await.expect("migrate SQLite");
    db
}

/// The SDK configuration for moto, with a short timeout.
pub async fn aws_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("TEST_ANB_REAL_AWS").is_some(),
        "AWS_ENDPOINT_URL is not set: run `make test`, or start moto and point AWS_ENDPOINT_URL at it \
         (or set TEST_ANB_REAL_AWS=1 to create test buckets and queues in a real account)"
    );
    crate::aws::sdk_config(Duration::from_secs(15)).await
}

/// A fresh bucket, and a store on it under `prefix`.
pub async fn s3_store(config: &aws_config::SdkConfig, options: S3Options) -> S3Store {
    let client = S3Store::client(config);
    let bucket = format!("anb-t-{}", Uuid::new_v4().simple());
    let mut create = client.create_bucket().bucket(&bucket);
    // Outside us-east-1, S3 wants the region named (moto accepts either).
    if let Some(region) = config.region().map(|r| r.as_ref().to_string()).filter(|r| r != "us-east-1") {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let location =
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region.as_str()));
        create = create.create_bucket_configuration(location.build());
    }
    create.send().await.expect("create a test bucket");
    S3Store::new(client, bucket, "clips", options)
}

/// A fresh queue with a dead-letter queue after [`MAX_RECEIVES`], as the template makes them.
/// Returns (queue, dead-letter queue).
pub async fn sqs_queues(config: &aws_config::SdkConfig) -> (SqsQueue, SqsQueue) {
    let client = SqsQueue::client(config);
    let name = format!("anb-t-{}", Uuid::new_v4().simple());
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create a dead-letter queue")
        .queue_url
        .expect("queue url");
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dead-letter queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue arn");
    let policy = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string() });
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .expect("create a queue")
        .queue_url
        .expect("queue url");
    (SqsQueue::new(client.clone(), url), SqsQueue::new(client, dlq_url))
}

/// A moto server of a test's own, on a free loopback port, for tests that freeze or stop it
/// (`TEST_ANB_MOTO_SERVER` names the `moto_server` program). Killed when dropped.
pub struct OwnMoto {
    child: std::process::Child,
    pub url: String,
}

impl OwnMoto {
    pub fn start() -> OwnMoto {
        let bin =
            std::env::var("TEST_ANB_MOTO_SERVER").expect("TEST_ANB_MOTO_SERVER names moto_server (run `make test`)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        OwnMoto { child, url: format!("http://127.0.0.1:{port}") }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP: the port stays open and every request hangs, the worst case for a client.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        std::process::Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("kill");
    }

    /// The SDK configuration for this server, with `timeout` per call.
    pub async fn aws_config(&self, timeout: Duration) -> aws_config::SdkConfig {
        crate::aws::loader()
            .endpoint_url(&self.url)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// For each async test `fn name(db: Db)` in scope, generate `postgres::name` and `sqlite::name`,
/// each on a fresh database: one conformance test, both backends.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (db, _) = $crate::testing::postgres().await;
                    super::$name(db).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = $crate::testing::sqlite(dir.path()).await;
                    super::$name(db).await;
                    drop(dir);
                }
            )*
        }
    };
}
