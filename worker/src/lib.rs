//! anb-worker: the queue consumer that runs the pipeline on uploaded videos.
//!
//! So far: [`adapters`], which let the pipeline read from and write to blob storage. The consumer
//! loop, leases and shutdown come with issue 5.

pub mod adapters;
