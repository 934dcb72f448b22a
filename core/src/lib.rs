//! anb-core: settings, the domain model, the database store, blob storage and the job queue
//! shared by web and worker. Knows nothing about GStreamer or HTTP.
//!
//! So far: [`settings`] and [`blob`] storage with its local-folder backend. The S3 backend, the
//! database store and the job queue come with the rest of issue 3.

pub mod blob;
pub mod settings;

pub use settings::{QueueUrl, Settings, SettingsError, StorageUrl};
