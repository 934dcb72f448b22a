//! The S3 backend (`s3://BUCKET/PREFIX`).
//!
//! Puts stream: the body is cut into parts as it arrives, each part uploads while the next one
//! fills (so memory stays at two parts whatever the object's size), and a body that ends within
//! the first part becomes one plain PUT. A multipart upload that fails, or whose future is
//! dropped, is aborted, so no incomplete upload is left to be billed.
//!
//! Reads are ranged GETs through [`CachedReader`], pinned to the ETag seen when the object was
//! opened: if the object is replaced mid-read, the read fails instead of mixing two versions.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{BlobKey, BlobReader, BlobStore, Body, CacheConfig, CachedReader, PresignedPut, RangeFetch, StorageError};
use crate::aws::{classify, endpoint_overridden, Failure};
use crate::Cause;

/// Tries to abort a failed multipart upload before leaving it to the lifecycle rule.
const ABORT_TRIES: u32 = 4;

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

#[derive(Debug, Clone, Copy)]
pub struct S3Options {
    /// Bytes per multipart part; at least [`MIN_PART_SIZE`].
    pub part_size: usize,
    pub cache: CacheConfig,
    /// Bound on one call, retries included; also on reading one GET's body.
    pub timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options { part_size: 8 << 20, cache: CacheConfig::default(), timeout: Duration::from_secs(30) }
    }
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    options: S3Options,
}

impl S3Store {
    /// A store in `bucket` under `prefix` (may be empty).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>, options: S3Options) -> Self {
        let options = S3Options { part_size: options.part_size.max(MIN_PART_SIZE), ..options };
        let prefix = prefix.into().trim_matches('/').to_string();
        S3Store { client, bucket: bucket.into(), prefix, options }
    }

    /// An S3 client from the shared SDK configuration: path-style addressing when the endpoint
    /// is not AWS's own, and checksums only where S3 requires them (the SDK's defaults add
    /// checksums that S3-compatible servers reject and that break ranged reads).
    pub fn client(config: &aws_config::SdkConfig) -> Client {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(endpoint_overridden(config, "AWS_ENDPOINT_URL_S3"))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Client::from_conf(s3)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of a blob key, with the store's prefix.
    pub fn object_key(&self, key: &BlobKey) -> String {
        if self.prefix.is_empty() {
            key.as_str().to_string()
        } else {
            format!("{}/{}", self.prefix, key.as_str())
        }
    }

    async fn put_small(&self, key: &BlobKey, object: &str, data: Bytes, only_new: bool) -> Result<(), StorageError> {
        let len = data.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type(key.content_type())
            .content_length(len)
            .set_if_none_match(only_new.then(|| "*".to_string()))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| write_error(e, key))?;
        Ok(())
    }
}

fn storage_error<E>(
    err: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    key: Option<&BlobKey>,
) -> StorageError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(&err) {
        Failure::Transient(detail) => StorageError::Unavailable(Cause::described(detail, err)),
        Failure::Refused { code, status, .. } if (status == 404 && code != "NoSuchBucket") || code == "NoSuchKey" => {
            match key {
                Some(key) => StorageError::NotFound(key.clone()),
                None => StorageError::Rejected(Cause::described(format!("{code} (HTTP {status})"), err)),
            }
        }
        Failure::Refused { message, .. } => StorageError::Rejected(Cause::described(message, err)),
    }
}

/// A write's error; a conditional write that found an object (412) is `AlreadyExists`.
fn write_error<E>(
    err: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    key: &BlobKey,
) -> StorageError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(&err) {
        Failure::Refused { status: 412, .. } => StorageError::AlreadyExists(key.clone()),
        _ => storage_error(err, None),
    }
}

/// Read from `body` into `buf` until it holds `size` bytes or the body ends; true at the end.
async fn fill(
    body: &mut Body,
    buf: &mut BytesMut,
    size: usize,
    pending: &mut Option<Bytes>,
) -> Result<bool, StorageError> {
    loop {
        if let Some(mut chunk) = pending.take() {
            let room = size - buf.len();
            if chunk.len() > room {
                *pending = Some(chunk.split_off(room));
            }
            buf.extend_from_slice(&chunk);
        }
        if buf.len() >= size {
            return Ok(false);
        }
        match body.next().await {
            Some(chunk) => *pending = Some(chunk.map_err(StorageError::Body)?),
            None => return Ok(true),
        }
    }
}

/// Aborts the multipart upload when dropped unless it completed: covers errors and a caller
/// that drops the put future (a client that went away, a cancelled job).
struct MultipartGuard {
    client: Client,
    bucket: String,
    object: String,
    upload_id: Option<String>,
}

impl MultipartGuard {
    fn id(&self) -> &str {
        self.upload_id.as_deref().unwrap_or_default()
    }

    /// The abort, retried while S3 is unreachable (the likely reason the upload failed): a
    /// few tries over about half a minute, then the bucket's lifecycle rule is the safety net.
    fn abort_request(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let upload_id = self.upload_id.clone()?;
        let request = self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.object).upload_id(upload_id);
        let object = self.object.clone();
        Some(async move {
            let mut delay = Duration::from_secs(2);
            for attempt in 1..=ABORT_TRIES {
                match request.clone().send().await {
                    Ok(_) => return,
                    Err(e) if attempt == ABORT_TRIES || !matches!(classify(&e), Failure::Transient(_)) => {
                        tracing::warn!(object, error = %crate::aws::describe(&e), "could not abort a multipart upload; the bucket's lifecycle rule will");
                        return;
                    }
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        })
    }

    /// Abort now and wait for it (the service answers).
    async fn abort(mut self) {
        if let Some(abort) = self.abort_request() {
            abort.await;
        }
        self.upload_id = None;
    }
}

impl Drop for MultipartGuard {
    fn drop(&mut self) {
        if let (Some(abort), Ok(runtime)) = (self.abort_request(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(abort);
        }
    }
}

async fn upload_part(guard: &MultipartGuard, number: i32, data: Bytes) -> Result<CompletedPart, StorageError> {
    let len = data.len() as i64;
    let out = guard
        .client
        .upload_part()
        .bucket(&guard.bucket)
        .key(&guard.object)
        .upload_id(guard.id())
        .part_number(number)
        .content_length(len)
        .body(ByteStream::from(data))
        .send()
        .await
        .map_err(|e| storage_error(e, None))?;
    Ok(CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build())
}

impl S3Store {
    /// Stream `body` to `key`: one PUT when it fits a part, else a multipart upload (aborted on
    /// failure). With `only_new`, S3 refuses (412) if an object is already there.
    async fn write(&self, key: &BlobKey, mut body: Body, only_new: bool) -> Result<u64, StorageError> {
        let object = self.object_key(key);
        let part_size = self.options.part_size;
        let mut pending = None;
        let mut buf = BytesMut::with_capacity(part_size);
        let mut ended = fill(&mut body, &mut buf, part_size, &mut pending).await?;
        if ended {
            let total = buf.len() as u64;
            self.put_small(key, &object, buf.freeze(), only_new).await?;
            return Ok(total);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&object)
            .content_type(key.content_type())
            .send()
            .await
            .map_err(|e| storage_error(e, None))?;
        let guard = MultipartGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            object: object.clone(),
            upload_id: created.upload_id,
        };
        let mut parts = Vec::new();
        let mut total = 0u64;
        let result: Result<(), StorageError> = async {
            loop {
                let part = buf.split().freeze();
                total += part.len() as u64;
                let number = parts.len() as i32 + 1;
                if ended {
                    parts.push(upload_part(&guard, number, part).await?);
                    return Ok(());
                }
                // Upload this part while the next one fills: two parts in memory at most.
                buf.reserve(part_size);
                let (uploaded, filled) =
                    tokio::join!(upload_part(&guard, number, part), fill(&mut body, &mut buf, part_size, &mut pending));
                parts.push(uploaded?);
                ended = filled?;
                if ended && buf.is_empty() {
                    return Ok(());
                }
            }
        }
        .await;
        match result {
            Ok(()) => {}
            // The client went away: the service is fine, so abort now and be sure.
            Err(e @ StorageError::Body(_)) => {
                guard.abort().await;
                return Err(e);
            }
            // The service is in trouble: abort in the background (the guard's drop), answer now.
            Err(e) => return Err(e),
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&object)
            .upload_id(guard.id())
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .set_if_none_match(only_new.then(|| "*".to_string()))
            .send()
            .await;
        match completed {
            Ok(_) => {
                let mut guard = guard;
                guard.upload_id = None; // completed: nothing to abort
                Ok(total)
            }
            Err(e) => Err(write_error(e, key)),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put_stream(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError> {
        self.write(key, body, false).await
    }

    async fn put_stream_new(&self, key: &BlobKey, body: Body) -> Result<u64, StorageError> {
        self.write(key, body, true).await
    }

    async fn open(&self, key: &BlobKey) -> Result<Arc<dyn BlobReader>, StorageError> {
        let object = self.object_key(key);
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&object)
            .send()
            .await
            .map_err(|e| storage_error(e, Some(key)))?;
        let size = head.content_length.unwrap_or(0).max(0) as u64;
        let fetch = RangedGet {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            object,
            key: key.clone(),
            etag: head.e_tag,
            timeout: self.options.timeout,
        };
        Ok(Arc::new(CachedReader::new(fetch, size, self.options.cache)))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| storage_error(e, None))?;
        Ok(())
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool, StorageError> {
        match self.client.head_object().bucket(&self.bucket).key(self.object_key(key)).send().await {
            Ok(_) => Ok(true),
            Err(e) => match storage_error(e, Some(key)) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn presign_get(&self, key: &BlobKey, expires_in: Duration) -> Result<String, StorageError> {
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::Rejected(Cause::of(e)))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .presigned(config)
            .await
            .map_err(|e| storage_error(e, None))?;
        Ok(request.uri().to_string())
    }

    async fn presign_put(&self, key: &BlobKey, size: u64, expires_in: Duration) -> Result<PresignedPut, StorageError> {
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::Rejected(Cause::of(e)))?;
        // The length is a signed header: S3 refuses a PUT of any other size.
        let length =
            i64::try_from(size).map_err(|_| StorageError::Rejected(format!("{size} bytes is too large").into()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_length(length)
            // One upload per link: once an object is there, S3 refuses another PUT (412).
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(|e| storage_error(e, None))?;
        let headers = request.headers().map(|(name, value)| (name.to_ascii_lowercase(), value.to_string())).collect();
        Ok(PresignedPut { url: request.uri().to_string(), headers })
    }
}

struct RangedGet {
    client: Client,
    bucket: String,
    object: String,
    key: BlobKey,
    etag: Option<String>,
    timeout: Duration,
}

#[async_trait::async_trait]
impl RangeFetch for RangedGet {
    async fn fetch(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.object)
            .range(format!("bytes={offset}-{}", offset + len - 1))
            .set_if_match(self.etag.clone());
        let get = async {
            let out = request.send().await.map_err(|e| storage_error(e, Some(&self.key)))?;
            let body = out.body.collect().await.map_err(|e| StorageError::Unavailable(Cause::of(e)))?;
            Ok(body.into_bytes())
        };
        // The SDK's timeouts end at the response headers; the body could still stall.
        tokio::time::timeout(self.timeout, get)
            .await
            .map_err(|_| StorageError::Unavailable(format!("no answer from S3 within {:?}", self.timeout).into()))?
    }
}
