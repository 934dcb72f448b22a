//! One settings struct for every command: built-in defaults, then `anb.toml` if present, then
//! `ANB_*` environment variables (names in `docs/architecture.md` and the README). Invalid settings fail at start
//! with a message that names the setting.
//!
//! AWS credentials, region and endpoints are not here: the AWS SDK reads the standard variables
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...) itself, so one binary talks to AWS or an emulator.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The settings file read when present, in the working directory.
pub const SETTINGS_FILE: &str = "anb.toml";
const ENV_PREFIX: &str = "ANB_";
/// `ANB_STAGE_*` variables belong to the pipeline file, not to these settings.
const PIPELINE_ENV_PREFIX: &str = "stage_";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `ANB_LISTEN`: address the HTTP API listens on.
    pub listen: String,
    /// `ANB_DATABASE_URL`: `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// `ANB_DATABASE_PASSWORD`: the PostgreSQL password, when it is not in the URL (on ECS it
    /// comes from Secrets Manager while the URL is plain configuration).
    pub database_password: Option<String>,
    /// `ANB_STORAGE_URL`: `file://FOLDER` or `s3://BUCKET/PREFIX`.
    pub storage_url: String,
    /// `ANB_QUEUE_URL`: `embedded` or an SQS queue URL.
    pub queue_url: String,
    /// `ANB_DLQ_URL`: the dead-letter queue's SQS URL, if any.
    pub dlq_url: Option<String>,
    /// `ANB_SECRET_KEY`: JWT signing key. Required outside `anb serve`, which keeps one in `data/`.
    pub secret_key: Option<String>,
    /// `ANB_PIPELINE`: the pipeline file.
    pub pipeline: PathBuf,
    /// `ANB_MAX_UPLOAD_BYTES`: largest accepted upload.
    pub max_upload_bytes: u64,
    /// `ANB_WORKER_CONCURRENCY`: jobs a worker runs at once; default from the CPUs it may use.
    pub worker_concurrency: Option<usize>,
    /// `ANB_VISIBILITY_TIMEOUT_SECS`: how far each lease extension reaches.
    pub visibility_timeout_secs: u64,
    /// `ANB_STALL_TIMEOUT_SECS`: no progress for this long aborts a job.
    pub stall_timeout_secs: u64,
    /// `ANB_SHUTDOWN_GRACE_SECS`: how long running jobs may finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// `ANB_PUBLIC_URL`: the address clients reach the API at (for the folder backend's file
    /// links); default `http://` + the listen address.
    pub public_url: Option<String>,
    /// `ANB_CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser, or `*`.
    pub cors_origins: String,
    /// `ANB_AWS_TIMEOUT_SECS`: bound on one S3 or SQS call, retries included; an unreachable
    /// service becomes a retryable error in this time instead of a hang.
    pub aws_timeout_secs: u64,
    /// `ANB_PASSWORD_HASH_CONCURRENCY`: password hashes computed at once per process (each
    /// argon2id hash takes 19 MiB and tens of milliseconds of CPU); default from the memory and
    /// CPUs the process may use. Requests beyond it wait briefly, then get 503.
    pub password_hash_concurrency: Option<usize>,
    /// `ANB_TRUSTED_PROXY_HOPS`: proxies in front of the web that append the client's address to
    /// `X-Forwarded-For` (1 behind an ALB). 0 trusts no header: the socket's peer is the client.
    pub trusted_proxy_hops: usize,
    /// `ANB_LOGIN_ATTEMPTS_PER_MINUTE`: logins one client address may try per minute.
    pub login_attempts_per_minute: u32,
    /// `ANB_SIGNUPS_PER_HOUR`: accounts one client address may create per hour.
    pub signups_per_hour: u32,
    /// `ANB_VOTES_PER_MINUTE`: votes one client address may cast per minute.
    pub votes_per_minute: u32,
    /// `ANB_HEADER_READ_TIMEOUT_SECS`: a connection that has not sent a request's headers within
    /// this time is closed (slowloris); also how long a kept-alive connection may wait for its
    /// next request. Behind a load balancer, set it above the balancer's idle timeout (65 behind
    /// an ALB's 60 s).
    pub header_read_timeout_secs: u64,
    /// `ANB_BODY_IDLE_TIMEOUT_SECS`: a request body that sends nothing for this long is cut off
    /// (408) and nothing of it is kept.
    pub body_idle_timeout_secs: u64,
    /// `ANB_MAX_CONCURRENT_REQUESTS`: requests handled at once per process; more are refused
    /// at once with 503 (`/health` is never refused).
    pub max_concurrent_requests: usize,
    /// `ANB_UPLOADS_PER_ACCOUNT`: uploads one account may stream through the web at once.
    pub uploads_per_account: u32,
    /// `ANB_METRICS_TOKEN`: when set, `/metrics` answers only requests that carry
    /// `Authorization: Bearer <token>` (a scraper's), and 401 to anyone else.
    pub metrics_token: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8000".into(),
            database_url: "sqlite://data/anb.db".into(),
            database_password: None,
            storage_url: "file://data/blobs".into(),
            queue_url: "embedded".into(),
            dlq_url: None,
            secret_key: None,
            pipeline: PathBuf::from("pipeline.toml"),
            max_upload_bytes: 512 * 1024 * 1024,
            worker_concurrency: None,
            visibility_timeout_secs: 60,
            stall_timeout_secs: 60,
            shutdown_grace_secs: 100,
            public_url: None,
            cors_origins: "*".into(),
            aws_timeout_secs: 30,
            password_hash_concurrency: None,
            trusted_proxy_hops: 0,
            login_attempts_per_minute: 30,
            signups_per_hour: 20,
            votes_per_minute: 60,
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 20,
            max_concurrent_requests: 512,
            uploads_per_account: 2,
            metrics_token: None,
        }
    }
}

/// Secrets show as `<redacted>`, so settings can be logged.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Settings {}", self.redacted())
    }
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    Folder(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// Where jobs are queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    Embedded,
    Sqs(String),
}

/// Invalid settings, every one named by its environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl Settings {
    /// Fields that hold secrets: never logged, and set from a secret store in production.
    pub const SECRETS: [&'static str; 3] = ["secret_key", "database_password", "metrics_token"];

    /// The environment variable of every setting (`ANB_LISTEN`, ...).
    pub fn env_names() -> Vec<String> {
        let defaults = serde_json::to_value(Settings::default()).expect("settings serialise");
        let fields = defaults.as_object().expect("a struct");
        fields.keys().map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase())).collect()
    }

    /// Every setting by field name, secrets that are set shown as `<redacted>`, and so are
    /// passwords inside URLs (`postgres://anb:<redacted>@db/anb`).
    pub fn redacted(&self) -> serde_json::Value {
        let mut map = serde_json::to_value(self).expect("settings serialise");
        for secret in Self::SECRETS {
            if let Some(value) = map.get_mut(secret).filter(|v| !v.is_null()) {
                *value = "<redacted>".into();
            }
        }
        for value in map.as_object_mut().expect("a struct").values_mut() {
            if let Some(text) = value.as_str() {
                let hidden = redact_url_password(text);
                if hidden != text {
                    *value = hidden.into();
                }
            }
        }
        map
    }

    /// Defaults, then `anb.toml` (if present), then `ANB_*` variables, validated.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_figment(Self::figment())
    }

    /// The layered sources, for callers that add their own (tests, command-line flags).
    pub fn figment() -> Figment {
        Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file(SETTINGS_FILE)).merge(
            Env::prefixed(ENV_PREFIX).filter(|key| !key.as_str().to_ascii_lowercase().starts_with(PIPELINE_ENV_PREFIX)),
        )
    }

    pub fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        let settings: Settings =
            figment.extract().map_err(|e| SettingsError { problems: e.into_iter().map(|e| describe(&e)).collect() })?;
        let problems = settings.validate();
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError { problems })
        }
    }

    /// Every problem at once.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("ANB_LISTEN: `{}` is not an address like 127.0.0.1:8000", self.listen));
        }
        let db = &self.database_url;
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            problems.push(format!("ANB_DATABASE_URL: `{db}` is neither sqlite://PATH nor postgres://..."));
        }
        if self.database_password.is_some() && db.starts_with("sqlite:") {
            problems.push("ANB_DATABASE_PASSWORD: only a postgres:// database takes a password".into());
        }
        if let Err(e) = self.storage() {
            problems.push(e);
        }
        if let Err(e) = self.queue() {
            problems.push(e);
        }
        if self.max_upload_bytes == 0 {
            problems.push("ANB_MAX_UPLOAD_BYTES: must be more than 0".into());
        }
        if self.password_hash_concurrency == Some(0) {
            problems
                .push("ANB_PASSWORD_HASH_CONCURRENCY: must be at least 1 (or unset for a default from memory)".into());
        }
        if self.worker_concurrency == Some(0) {
            problems.push("ANB_WORKER_CONCURRENCY: must be at least 1 (or unset for one per CPU)".into());
        }
        for (name, value) in [
            ("ANB_VISIBILITY_TIMEOUT_SECS", self.visibility_timeout_secs),
            ("ANB_STALL_TIMEOUT_SECS", self.stall_timeout_secs),
            ("ANB_AWS_TIMEOUT_SECS", self.aws_timeout_secs),
            ("ANB_HEADER_READ_TIMEOUT_SECS", self.header_read_timeout_secs),
            ("ANB_BODY_IDLE_TIMEOUT_SECS", self.body_idle_timeout_secs),
            ("ANB_LOGIN_ATTEMPTS_PER_MINUTE", self.login_attempts_per_minute.into()),
            ("ANB_SIGNUPS_PER_HOUR", self.signups_per_hour.into()),
            ("ANB_VOTES_PER_MINUTE", self.votes_per_minute.into()),
            ("ANB_UPLOADS_PER_ACCOUNT", self.uploads_per_account.into()),
            ("ANB_MAX_CONCURRENT_REQUESTS", self.max_concurrent_requests as u64),
        ] {
            if value == 0 {
                problems.push(format!("{name}: must be more than 0"));
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!("ANB_PUBLIC_URL: `{url}` is not an http(s) URL"));
            }
        }
        if self.visibility_timeout_secs > 43_200 {
            problems.push("ANB_VISIBILITY_TIMEOUT_SECS: SQS allows at most 43200 (12 hours)".into());
        }
        problems
    }

    /// The base URL clients use to reach the API.
    pub fn public_base_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_string()
    }

    pub fn cors_origin_list(&self) -> Vec<String> {
        self.cors_origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect()
    }

    pub fn storage(&self) -> Result<StorageUrl, String> {
        let url = &self.storage_url;
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("ANB_STORAGE_URL: `file://` needs a folder".into());
            }
            return Ok(StorageUrl::Folder(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("ANB_STORAGE_URL: `{url}` has no bucket (s3://BUCKET/PREFIX)"));
            }
            return Ok(StorageUrl::S3 { bucket: bucket.into(), prefix: prefix.trim_end_matches('/').into() });
        }
        Err(format!("ANB_STORAGE_URL: `{url}` is neither file://FOLDER nor s3://BUCKET/PREFIX"))
    }

    pub fn queue(&self) -> Result<QueueUrl, String> {
        match self.queue_url.as_str() {
            "embedded" => Ok(QueueUrl::Embedded),
            url if url.starts_with("https://") || url.starts_with("http://") => Ok(QueueUrl::Sqs(url.into())),
            url => Err(format!("ANB_QUEUE_URL: `{url}` is neither `embedded` nor an SQS queue URL")),
        }
    }
}

/// `scheme://user:password@host...` with the password replaced; anything else unchanged.
fn redact_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return text.to_string() };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
        None => text.to_string(),
    }
}

/// Name a figment error by its environment variable where there is one.
fn describe(e: &figment::Error) -> String {
    let key = e.path.first().map(|k| format!("{ENV_PREFIX}{}", k.to_uppercase()));
    match key {
        Some(key) => format!("{key}: {}", e.kind),
        None => e.kind.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment's own error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_match_the_design() {
        Jail::expect_with(|_| {
            let s = Settings::load().unwrap();
            assert_eq!(s, Settings::default());
            assert_eq!(s.storage().unwrap(), StorageUrl::Folder("data/blobs".into()));
            assert_eq!(s.queue().unwrap(), QueueUrl::Embedded);
            assert_eq!(s.max_upload_bytes, 512 << 20);
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_and_pipeline_variables_are_left_alone() {
        Jail::expect_with(|jail| {
            jail.create_file("anb.toml", "listen = \"0.0.0.0:9000\"\nstall_timeout_secs = 30\n")?;
            jail.set_env("ANB_STALL_TIMEOUT_SECS", "45");
            jail.set_env("ANB_STORAGE_URL", "s3://clips/prod/");
            jail.set_env("ANB_STAGE_ENCODE_CRF", "20");
            let s = Settings::load().unwrap();
            assert_eq!(s.listen, "0.0.0.0:9000");
            assert_eq!(s.stall_timeout_secs, 45, "the environment wins over the file");
            assert_eq!(s.storage().unwrap(), StorageUrl::S3 { bucket: "clips".into(), prefix: "prod".into() });
            Ok(())
        });
    }

    #[test]
    fn the_database_password_may_come_apart_and_secrets_are_never_shown() {
        Jail::expect_with(|jail| {
            jail.set_env("ANB_DATABASE_URL", "postgres://anb@db.internal:5432/anb");
            jail.set_env("ANB_DATABASE_PASSWORD", "hunter2-from-secrets-manager");
            jail.set_env("ANB_SECRET_KEY", "a-jwt-key-that-must-not-leak");
            let s = Settings::load().unwrap();
            assert_eq!(s.database_password.as_deref(), Some("hunter2-from-secrets-manager"));
            let shown = format!("{s:?}");
            assert!(!shown.contains("hunter2") && !shown.contains("must-not-leak"), "{shown}");
            jail.set_env("ANB_DATABASE_URL", "postgres://anb:in-the-url@db.internal:5432/anb?sslmode=require");
            let shown = format!("{:?}", Settings::load().unwrap());
            assert!(
                !shown.contains("in-the-url")
                    && shown.contains("postgres://anb:<redacted>@db.internal:5432/anb?sslmode=require"),
                "{shown}"
            );
            jail.set_env("ANB_DATABASE_URL", "postgres://anb@db.internal:5432/anb");
            assert!(shown.contains("db.internal") && shown.contains("<redacted>"), "{shown}");
            jail.set_env("ANB_DATABASE_URL", "sqlite://data/anb.db");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("ANB_DATABASE_PASSWORD"), "{err}");
            Ok(())
        });
        let names = Settings::env_names();
        assert!(
            names.contains(&"ANB_DATABASE_PASSWORD".to_string()) && names.contains(&"ANB_LISTEN".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        Jail::expect_with(|jail| {
            jail.set_env("ANB_LISTEN", "everywhere");
            jail.set_env("ANB_QUEUE_URL", "rabbitmq://x");
            jail.set_env("ANB_STALL_TIMEOUT_SECS", "0");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("ANB_LISTEN"), "{err}");
            assert!(err.contains("ANB_QUEUE_URL"), "{err}");
            assert!(err.contains("ANB_STALL_TIMEOUT_SECS"), "{err}");
            jail.set_env("ANB_MAX_UPLOAD_BYTES", "lots");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("ANB_MAX_UPLOAD_BYTES"), "{err}");
            jail.set_env("ANB_COLOUR", "blue");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("colour"), "unknown variables are errors: {err}");
            Ok(())
        });
    }
}
