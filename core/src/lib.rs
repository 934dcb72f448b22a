//! anb-core: settings, the domain model, the database store, blob storage and the job queue
//! shared by web and worker. Knows nothing about GStreamer or HTTP.
//!
//! So far: [`settings`]. The store, blob storage and queue come with the rest of issue 3.

pub mod settings;

pub use settings::{QueueUrl, Settings, SettingsError, StorageUrl};
