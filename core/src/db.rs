//! The database connection: PostgreSQL in production, SQLite for the embedded default. One
//! [`Db`] value is shared by the [store](crate::store) and the [embedded queue](crate::queue).
//!
//! The SQL is written once and compiled for both backends by [`on_pool!`]: each arm of the match
//! sees a concrete pool, so sqlx checks the types for each database without a trait-bound maze.
//! The few places where the dialects differ go through [`Db::dialect`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// How long a caller waits for a connection before the database counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL cancels any statement that runs longer (every query here takes milliseconds): a
/// lock wait or a runaway plan ends as an error instead of holding a job's heartbeat. Callers
/// that must not hang on a dead connection add their own timeout on top.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Run the same block against whichever pool `$db` holds.
#[macro_export]
#[doc(hidden)]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}
pub use on_pool;

/// The few statements that differ between the two databases.
pub struct Dialect {
    /// Appended to a `SELECT` that claims rows several consumers compete for. PostgreSQL skips
    /// rows another transaction holds; SQLite serialises writers, so it needs nothing.
    pub skip_locked: &'static str,
}

const POSTGRES: Dialect = Dialect { skip_locked: "FOR UPDATE SKIP LOCKED" };
const SQLITE: Dialect = Dialect { skip_locked: "" };

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Db {
    /// Connect to `postgres://...` or `sqlite://PATH` (the file and its folder are created).
    /// Does not migrate: call [`Db::migrate`].
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        Self::connect_with_password(url, None).await
    }

    /// As [`Db::connect`], with the PostgreSQL password given apart from the URL (in production
    /// it comes from a secret store, while the URL is plain configuration).
    pub async fn connect_with_password(url: &str, password: Option<&str>) -> Result<Db, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(url)?
                .application_name("anb")
                .options([("statement_timeout", format!("{}ms", STATEMENT_TIMEOUT.as_millis()))]);
            if let Some(password) = password {
                options = options.password(password);
            }
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A connection that died while PostgreSQL was away is noticed here, not by a query.
                .test_before_acquire(true)
                .connect_with(options)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).ok_or_else(|| {
            sqlx::Error::Configuration(format!("`{url}` is neither sqlite:// nor postgres://").into())
        })?;
        let in_memory = path.starts_with(":memory:");
        if !in_memory {
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers run beside the one writer; NORMAL is durable across app crashes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if in_memory { 1 } else { 8 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// Apply the backend's migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Postgres(pool) => PG_MIGRATOR.run(pool).await,
            Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
        }
    }

    pub fn dialect(&self) -> &'static Dialect {
        match self {
            Db::Postgres(_) => &POSTGRES,
            Db::Sqlite(_) => &SQLITE,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Whether a database error is worth retrying: the connection or the server went away, or a
/// lock could not be had in time. Everything else (a constraint, bad SQL) will fail again.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                // Connection exceptions (08), insufficient resources (53), operator intervention
                // such as a shutdown (57), serialization failures and deadlocks (40).
                ["08", "53", "57", "40"].iter().any(|class| code.starts_with(class))
            } else {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5) | Ok(6))
            }
        }
        _ => false,
    }
}
