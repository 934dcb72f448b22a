//! anb-core: settings, the domain model, the database store, blob storage and the job queue
//! shared by web and worker. Knows nothing about GStreamer or HTTP.
//!
//! Each abstraction has a production backend and an embedded one, and one conformance suite
//! (`core/tests/`) runs against both:
//! - [`store::Store`]: PostgreSQL or SQLite ([`db::Db`]), migrations per backend;
//! - [`blob::BlobStore`]: S3 or a local folder;
//! - [`queue::JobQueue`]: SQS or a queue table in the same database.

pub mod aws;
pub mod backends;
pub mod blob;
pub mod cause;
pub mod db;
#[cfg(any(test, feature = "testing"))]
pub mod faults;
pub mod job;
pub mod keys;
pub mod model;
pub mod queue;
pub mod settings;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use anb_codes::ErrorCode;
pub use cause::Cause;
pub use settings::{QueueUrl, Settings, SettingsError, StorageUrl};
