//! Everything a command needs, connected from [`Settings`]: the database (migrated), the blob
//! store, the job queue and its dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use crate::blob::{BlobStore, FolderStore, S3Options, S3Store, UrlSigner};
use crate::db::Db;
use crate::queue::{EmbeddedQueue, JobQueue, SqsQueue, MAX_RECEIVES};
use crate::settings::{QueueUrl, Settings, StorageUrl};
use crate::store::{SqlStore, Store};

/// Names of the embedded queue and its dead letters in the `queue_messages` table.
pub const EMBEDDED_QUEUE: &str = "jobs";
pub const EMBEDDED_DLQ: &str = "jobs-dead";

#[derive(Clone)]
pub struct Backends {
    pub db: Db,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    /// Where messages go after [`MAX_RECEIVES`] receives; `None` for SQS without `ANB_DLQ_URL`.
    pub dead_letters: Option<Arc<dyn JobQueue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ANB_DATABASE_URL: cannot connect: {0}")]
    Database(#[from] sqlx::Error),
    #[error("ANB_DATABASE_URL: migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("ANB_QUEUE_URL: {0}")]
    Queue(#[source] crate::queue::QueueError),
    #[error("{0}")]
    Settings(String),
}

impl Backends {
    /// Connect everything and apply pending migrations. `signer` signs the folder backend's URLs.
    pub async fn connect(settings: &Settings, signer: UrlSigner) -> Result<Backends, ConnectError> {
        Backends::connect_with(settings, signer, S3Options::default()).await
    }

    /// As [`Backends::connect`], with S3 block, cache and part sizes of the caller's (the
    /// worker takes them from the pipeline's `download` and `upload` stages). The timeout is
    /// always `ANB_AWS_TIMEOUT_SECS`.
    pub async fn connect_with(settings: &Settings, signer: UrlSigner, s3: S3Options) -> Result<Backends, ConnectError> {
        let db = wait_for("the database", || async {
            let db = Db::connect_with_password(&settings.database_url, settings.database_password.as_deref()).await?;
            db.migrate().await?;
            Ok::<_, ConnectError>(db)
        })
        .await?;
        let storage = settings.storage().map_err(ConnectError::Settings)?;
        let queue_url = settings.queue().map_err(ConnectError::Settings)?;
        let needs_aws = matches!(storage, StorageUrl::S3 { .. }) || matches!(queue_url, QueueUrl::Sqs(_));
        let timeout = Duration::from_secs(settings.aws_timeout_secs);
        let aws = if needs_aws { Some(crate::aws::sdk_config(timeout).await) } else { None };

        let blobs: Arc<dyn BlobStore> = match storage {
            StorageUrl::Folder(root) => Arc::new(FolderStore::new(root, signer)),
            StorageUrl::S3 { bucket, prefix } => {
                let client = S3Store::client(aws.as_ref().expect("loaded for S3"));
                Arc::new(S3Store::new(client, bucket, prefix, S3Options { timeout, ..s3 }))
            }
        };
        let (queue, dead_letters): (Arc<dyn JobQueue>, Option<Arc<dyn JobQueue>>) = match queue_url {
            QueueUrl::Embedded => {
                let queue = EmbeddedQueue::new(db.clone(), EMBEDDED_QUEUE).with_dead_letter(EMBEDDED_DLQ, MAX_RECEIVES);
                let dead = queue.dead_letter_queue().map(|q| Arc::new(q) as Arc<dyn JobQueue>);
                (Arc::new(queue), dead)
            }
            QueueUrl::Sqs(url) => {
                let client = SqsQueue::client(aws.as_ref().expect("loaded for SQS"));
                let dead = settings
                    .dlq_url
                    .as_ref()
                    .map(|dlq| Arc::new(SqsQueue::new(client.clone(), dlq)) as Arc<dyn JobQueue>);
                (Arc::new(SqsQueue::new(client, url)), dead)
            }
        };
        // A queue that is not there yet (a broker restarting, a network still coming up) is
        // waited for like the database; a refused one (no such queue) is an error at once.
        wait_for("the job queue", || async { queue.depth().await.map_err(ConnectError::Queue) }).await?;
        Ok(Backends { store: Arc::new(SqlStore::new(db.clone())), db, blobs, queue, dead_letters })
    }
}

/// How long a starting process waits for its database and queue before it gives up.
pub const STARTUP_WAIT: Duration = Duration::from_secs(300);

/// Try `connect` until it succeeds, fails for a reason waiting will not fix, or [`STARTUP_WAIT`]
/// passes, backing off from half a second to ten: a task that starts while PostgreSQL restarts
/// (or resets connections) waits for it instead of exiting.
async fn wait_for<T, F, Fut>(what: &str, mut connect: F) -> Result<T, ConnectError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectError>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let mut wait = Duration::from_millis(500);
    loop {
        match connect().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_transient() && tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Waiting for {what}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

impl ConnectError {
    /// Whether waiting may fix it: the server is not reachable yet, as opposed to refusing us
    /// (bad credentials, a bad URL, a broken migration).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Database(e) => crate::db::is_transient(e),
            ConnectError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => crate::db::is_transient(e),
            ConnectError::Queue(e) => e.is_retryable(),
            _ => false,
        }
    }
}
