//! Where `anb process` reads and writes: a local path or an `s3://bucket/key` object, opened as
//! the pipeline's byte source and sink. S3 goes through the same blob-store code as the worker
//! (ranged reads with a block cache, streaming multipart put).

use std::path::PathBuf;
use std::sync::Arc;

use anb_core::blob::{BlobKey, BlobReader, BlobStore, S3Options, S3Store};
use anb_pipeline::{ByteSink, ByteSource, ErrorCode, FileSink, FileSource, PipelineError};
use anb_worker::adapters::{BlobSink, BlobSource};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    pub fn parse(arg: &str) -> Result<Location, String> {
        if let Some(rest) = arg.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(Location::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => Err(format!("`{arg}` is not s3://BUCKET/KEY")),
            };
        }
        if arg.contains("://") {
            return Err(format!("`{arg}`: only local paths and s3://BUCKET/KEY are supported"));
        }
        Ok(Location::File(PathBuf::from(arg)))
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// The two ends of a run, and what is needed to report on them afterwards.
pub struct Endpoints {
    pub source: Arc<dyn ByteSource>,
    pub sink: Box<dyn ByteSink>,
    /// The S3 reader, whose fetch counter tells what S3 actually served.
    pub s3_reader: Option<Arc<dyn BlobReader>>,
    /// Runs the S3 calls; kept alive for the whole run.
    pub runtime: Option<Runtime>,
}

/// Open both ends; S3 objects with `options` (from the pipeline's download and upload stages).
pub fn open(input: &Location, output: &Location, options: S3Options) -> Result<Endpoints, PipelineError> {
    let runtime = if input.is_s3() || output.is_s3() {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| PipelineError::new(ErrorCode::SourceFailed, e.to_string()))?,
        )
    } else {
        None
    };
    let aws = runtime.as_ref().map(|rt| rt.block_on(anb_core::aws::sdk_config(options.timeout)));
    let s3 = |bucket: &str| S3Store::new(S3Store::client(aws.as_ref().expect("runtime")), bucket, "", options);
    let blob_key = |key: &str, code| BlobKey::new(key).map_err(|e| PipelineError::new(code, e.to_string()));

    let (source, s3_reader): (Arc<dyn ByteSource>, _) = match input {
        Location::File(path) => {
            let file = FileSource::open(path).map_err(|e| {
                PipelineError::new(ErrorCode::SourceFailed, format!("cannot open `{}`: {e}", path.display()))
            })?;
            (Arc::new(file), None)
        }
        Location::S3 { bucket, key } => {
            let rt = runtime.as_ref().expect("runtime");
            let store = s3(bucket);
            let key = blob_key(key, ErrorCode::SourceFailed)?;
            let source = rt
                .block_on(BlobSource::open(&store, &key))
                .map_err(|e| PipelineError::new(ErrorCode::SourceFailed, format!("cannot open `{input}`: {e}")))?;
            let reader = source.reader();
            (Arc::new(source), Some(reader))
        }
    };
    let sink: Box<dyn ByteSink> = match output {
        Location::File(path) => Box::new(FileSink::create(path).map_err(|e| {
            PipelineError::new(ErrorCode::SinkFailed, format!("cannot create `{}`: {e}", path.display()))
        })?),
        Location::S3 { bucket, key } => {
            let rt = runtime.as_ref().expect("runtime");
            let store: Arc<dyn BlobStore> = Arc::new(s3(bucket));
            let key = blob_key(key, ErrorCode::SinkFailed)?;
            let _inside = rt.enter();
            Box::new(BlobSink::start(store, key))
        }
    };
    Ok(Endpoints { source, sink, s3_reader, runtime })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("in.mp4").unwrap(), Location::File("in.mp4".into()));
        assert_eq!(
            Location::parse("s3://clips/uploads/a.mp4").unwrap(),
            Location::S3 { bucket: "clips".into(), key: "uploads/a.mp4".into() }
        );
        for bad in ["s3://clips", "s3://clips/", "s3:///key", "http://x/y"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
