//! anb-worker: the queue consumer. It turns queued uploads into processed videos with the
//! pipeline, streaming from blob storage to blob storage, under the reliability contract of
//! `docs/reliability.md`: at-least-once delivery, once-only effect, nothing lost to a crash, a
//! graceful stop on SIGTERM.
//!
//! - [`adapters`]: blob storage as the pipeline's byte source and sink;
//! - [`job`]: one message to its outcome; [`lease`]: the visibility heartbeat tied to progress;
//! - [`settle`]: handing a job on, dead-lettering it, and recording outcomes through blips;
//! - [`consumer`]: slots, receiving, shutdown; [`protection`]: ECS scale-in protection;
//! - [`telemetry`]: metrics as Prometheus text and CloudWatch EMF lines.

pub mod adapters;
pub mod consumer;
pub mod job;
pub mod lease;
mod options;
pub mod protection;
pub mod settle;
pub mod telemetry;

pub use consumer::{Summary, Worker};
pub use job::{JobContext, Outcome};
pub use options::{available_cpus, default_concurrency, WorkerOptions, MAX_ATTEMPTS};
