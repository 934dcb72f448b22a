//! Fault-injecting wrappers around the real store and queue (feature `testing`): a test names
//! a method and how many of its next calls fail, and the wrapper answers those with the error a
//! real outage gives (`Unavailable`, or `LeaseLost` for a queue receipt) without calling the
//! real backend; every other call goes through. Each wrapper counts calls per method, so a test
//! can also wait for "the worker has reached `complete`".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{NewUser, NewVideo, Page, PublicVideo, RankingRow, StartOutcome, User, Video};
use crate::queue::{Depth, JobQueue, QueueError, Received};
use crate::store::{Store, StoreError, StoreResult};

/// What an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service did not answer (a connection cut, a timeout).
    Unavailable,
    /// Queue only: the receipt no longer names a delivery in flight.
    LeaseLost,
}

/// The plan of faults and the calls seen, shared by a wrapper and its test.
#[derive(Default)]
pub struct Faults {
    pending: Mutex<HashMap<&'static str, (u32, Fault)>>,
    calls: Mutex<HashMap<&'static str, u32>>,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::default()
    }

    /// The next `n` calls of `method` fail as `Unavailable`.
    pub fn fail_next(&self, method: &'static str, n: u32) {
        self.fail_next_with(method, n, Fault::Unavailable);
    }

    pub fn fail_next_with(&self, method: &'static str, n: u32, fault: Fault) {
        self.pending.lock().expect("faults").insert(method, (n, fault));
    }

    /// Calls of `method` so far, failed ones included.
    pub fn calls(&self, method: &str) -> u32 {
        self.calls.lock().expect("faults").get(method).copied().unwrap_or(0)
    }

    /// Faults planned for `method` and not yet used.
    pub fn remaining(&self, method: &str) -> u32 {
        self.pending.lock().expect("faults").get(method).map_or(0, |(n, _)| *n)
    }

    /// Count a call of `method`; the fault to answer with, if one is due.
    fn take(&self, method: &'static str) -> Option<Fault> {
        *self.calls.lock().expect("faults").entry(method).or_default() += 1;
        let mut pending = self.pending.lock().expect("faults");
        let (left, fault) = pending.get_mut(method)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(*fault)
    }

    fn store_check(&self, method: &'static str) -> StoreResult<()> {
        match self.take(method) {
            Some(_) => Err(StoreError::Unavailable(format!("injected fault in `{method}`").into())),
            None => Ok(()),
        }
    }

    fn queue_check(&self, method: &'static str) -> Result<(), QueueError> {
        match self.take(method) {
            Some(Fault::Unavailable) => Err(QueueError::Unavailable(format!("injected fault in `{method}`").into())),
            Some(Fault::LeaseLost) => Err(QueueError::LeaseLost),
            None => Ok(()),
        }
    }
}

/// A [`Store`] whose calls fail as its [`Faults`] say.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }
}

/// Check the plan for the method, then call the real store.
macro_rules! through {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        $self.faults.store_check(stringify!($method))?;
        $self.inner.$method($($arg),*).await
    }};
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        through!(self, create_user(new))
    }
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        through!(self, user(id))
    }
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        through!(self, user_by_email(email))
    }
    async fn create_video(&self, new: NewVideo) -> StoreResult<Video> {
        through!(self, create_video(new))
    }
    async fn video(&self, id: Uuid) -> StoreResult<Option<Video>> {
        through!(self, video(id))
    }
    async fn videos_of(&self, user_id: Uuid) -> StoreResult<Vec<Video>> {
        through!(self, videos_of(user_id))
    }
    async fn delete_video(&self, id: Uuid) -> StoreResult<Option<Video>> {
        through!(self, delete_video(id))
    }
    async fn confirm_upload(&self, id: Uuid, size: i64) -> StoreResult<bool> {
        through!(self, confirm_upload(id, size))
    }
    async fn abandoned_uploads(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Video>> {
        through!(self, abandoned_uploads(before, limit))
    }
    async fn delete_abandoned_upload(&self, id: Uuid) -> StoreResult<bool> {
        through!(self, delete_abandoned_upload(id))
    }
    async fn mark_enqueued(&self, id: Uuid) -> StoreResult<()> {
        through!(self, mark_enqueued(id))
    }
    async fn unqueued_videos(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>> {
        through!(self, unqueued_videos(before, limit))
    }
    async fn stale_processing(&self, before: OffsetDateTime, limit: i64) -> StoreResult<Vec<Uuid>> {
        through!(self, stale_processing(before, limit))
    }
    async fn start_processing(&self, id: Uuid, stale_after: Duration) -> StoreResult<StartOutcome> {
        through!(self, start_processing(id, stale_after))
    }
    async fn set_progress(&self, id: Uuid, attempt: i32, progress: Option<f64>) -> StoreResult<bool> {
        through!(self, set_progress(id, attempt, progress))
    }
    async fn complete(
        &self,
        id: Uuid,
        attempt: i32,
        processed_key: &str,
        poster_key: Option<&str>,
    ) -> StoreResult<bool> {
        through!(self, complete(id, attempt, processed_key, poster_key))
    }
    async fn fail(
        &self,
        id: Uuid,
        attempt: i32,
        code: crate::ErrorCode,
        message: &str,
        retryable: bool,
    ) -> StoreResult<bool> {
        through!(self, fail(id, attempt, code, message, retryable))
    }
    async fn retry_later(&self, id: Uuid, attempt: i32, code: crate::ErrorCode, message: &str) -> StoreResult<bool> {
        through!(self, retry_later(id, attempt, code, message))
    }
    async fn public_videos(&self, page: Page) -> StoreResult<Vec<PublicVideo>> {
        through!(self, public_videos(page))
    }
    async fn vote(&self, video_id: Uuid, user_id: Uuid) -> StoreResult<i64> {
        through!(self, vote(video_id, user_id))
    }
    async fn rankings(&self, city: Option<&str>, page: Page) -> StoreResult<(Vec<RankingRow>, i64)> {
        through!(self, rankings(city, page))
    }
    async fn ping(&self) -> StoreResult<()> {
        through!(self, ping())
    }
}

/// A [`JobQueue`] whose calls fail as its [`Faults`] say.
pub struct FaultyQueue {
    inner: Arc<dyn JobQueue>,
    faults: Arc<Faults>,
}

impl FaultyQueue {
    pub fn new(inner: Arc<dyn JobQueue>, faults: Arc<Faults>) -> Self {
        FaultyQueue { inner, faults }
    }
}

#[async_trait::async_trait]
impl JobQueue for FaultyQueue {
    async fn send_after(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        self.faults.queue_check("send_after")?;
        self.inner.send_after(body, delay).await
    }
    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        self.faults.queue_check("receive")?;
        self.inner.receive(max, wait, visibility).await
    }
    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.faults.queue_check("change_visibility")?;
        self.inner.change_visibility(receipt, visibility).await
    }
    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.faults.queue_check("delete")?;
        self.inner.delete(receipt).await
    }
    async fn depth(&self) -> Result<Depth, QueueError> {
        self.faults.queue_check("depth")?;
        self.inner.depth().await
    }
}
