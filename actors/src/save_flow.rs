//! The save flow, the one path by which a document enters the tiers: admission by the
//! cache's rules, then the durable file, memory, and the retry queue that takes it to
//! Postgres; and the one path by which a version read from Postgres is adopted.
//!
//! PUT, refresh, import and restore save through [`SaveFlow`]; the listener, the startup
//! sync, the retry queue (a rebase) and the memory tier's loads adopt through
//! [`SaveFlow::adopt`] or the narrower [`Adopter`] (built before the queue exists).

use crate::cache_rules::{Admitted, LiveRules, Refusal};
use crate::domain::{CacheName, Document, Precondition};
use crate::files::{durable, FileHandle, FileTierError};
use crate::if_match::{Decided, IfMatch};
use crate::memory::{Mark, MemoryHandle};
use crate::refresher::RefresherHandle;
use crate::retry_queue::RetryQueueHandle;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::sync::{Arc, OnceLock};

/// Why a save was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// `If-Match` did not hold.
    #[error("precondition failed")]
    PreconditionFailed {
        /// The current ETag.
        current: Option<String>,
    },
    /// The file could not be made durable; nothing was acknowledged.
    #[error("could not write the cache durably: {0}")]
    Storage(#[source] FileTierError),
    /// An `If-Match` save Postgres took (its compare-and-set held) that the file tier
    /// could not: not acknowledged; the next adoption brings it to disk.
    #[error("could not write the cache durably: in Postgres, but not on disk: {0}")]
    NotOnDisk(#[source] FileTierError),
    /// A 304 about a version disk no longer holds: a save landed during the fetch, and
    /// nothing was changed.
    #[error("the cache changed during the fetch")]
    Changed,
    /// An `If-Match` save could not be checked against the other instances (Postgres
    /// unreachable, or its answer lost): not acknowledged; it may or may not have been
    /// applied when Postgres was asked.
    #[error("the precondition cannot be checked against the other instances now: {0}")]
    Unavailable(#[source] StoreError),
}

impl SaveError {
    /// From the file tier's error: a failed precondition is the client's, anything else
    /// the disk's.
    fn from_file(error: FileTierError) -> Self {
        match error {
            FileTierError::PreconditionFailed { current } => Self::PreconditionFailed { current },
            other => Self::Storage(other),
        }
    }
}

/// What memory does with an adopted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InMemory {
    /// Memory takes it: one cache another instance just wrote, or a rebase of a save
    /// memory already serves (the listener, the retry queue).
    Fill,
    /// Only a cache memory holds (or is loading) takes it; a cold one stays cold and
    /// is read from the file when asked for (the startup sync, over every row: memory
    /// is not filled with caches nobody has read).
    Follow,
}

/// Adopts a version made elsewhere (a row of Postgres, a rebase): the file tier takes it
/// if it is newer (or, with `expected`, if disk still holds exactly that version), then
/// memory as [`InMemory`] says; memory is evicted when it could be left serving an
/// older version than the file. Needs no retry queue, so the queue and the memory
/// loader can hold one.
#[derive(Clone)]
pub struct Adopter {
    files: FileHandle,
    memory: Option<MemoryHandle>,
}

impl Adopter {
    /// Adopts into the file tier and memory.
    pub fn new(files: FileHandle, memory: MemoryHandle) -> Self {
        Self { files, memory: Some(memory) }
    }

    /// For the memory tier's own loads: the memory tier stores what its load returns.
    pub fn files_only(files: FileHandle) -> Self {
        Self { files, memory: None }
    }

    /// The file tier.
    pub fn files(&self) -> &FileHandle {
        &self.files
    }

    /// Returns whether the file tier took `doc`.
    ///
    /// # Errors
    /// The file tier's error (memory is then evicted if the file may have changed).
    pub async fn adopt(
        &self,
        doc: Arc<Document>,
        expected: Option<u64>,
        in_memory: InMemory,
    ) -> Result<bool, FileTierError> {
        let mark = self.memory.as_ref().map(|m| m.mark(&doc.name));
        let taken = self.files.adopt(doc.clone(), expected).await;
        self.follow_file(&doc, mark.as_ref(), taken, in_memory).await
    }

    /// [`Self::adopt`] for several documents with one directory sync (the startup sync
    /// writing what Postgres holds); one result per document, in order.
    ///
    /// # Errors
    /// The file tier's error for the whole batch.
    pub async fn adopt_all(
        &self,
        docs: Vec<(Arc<Document>, Option<u64>)>,
        in_memory: InMemory,
    ) -> Result<Vec<Result<bool, FileTierError>>, FileTierError> {
        let marks: Vec<_> = docs.iter().map(|(doc, _)| self.memory.as_ref().map(|m| m.mark(&doc.name))).collect();
        let taken = self.files.adopt_all(docs.clone()).await?;
        let mut results = Vec::with_capacity(taken.len());
        for (((doc, _), taken), mark) in docs.iter().zip(taken).zip(&marks) {
            results.push(self.follow_file(doc, mark.as_ref(), taken, in_memory).await);
        }
        Ok(results)
    }

    /// Memory after the file tier's answer for `doc`: it follows a version the file
    /// took (unless the cache was evicted, deleted, since `mark` was taken before the
    /// file was asked), and is evicted wherever it could otherwise serve an older
    /// version than disk.
    async fn follow_file(
        &self,
        doc: &Arc<Document>,
        mark: Option<&Mark>,
        taken: Result<bool, FileTierError>,
        in_memory: InMemory,
    ) -> Result<bool, FileTierError> {
        match taken {
            Ok(true) => {
                // Tests delete the cache here, between the file and memory.
                crate::pause_point::pause_point("adopt::memory").await;
                if let (Some(memory), Some(mark)) = (&self.memory, mark) {
                    let followed = match in_memory {
                        InMemory::Fill => memory.store(doc.clone(), mark).await.map(|_| true),
                        InMemory::Follow => memory.follow(doc.clone(), mark).await,
                    };
                    if followed.is_err() {
                        // Memory must not go on serving the older version over the file.
                        let _ = memory.evict(&doc.name).await;
                    }
                }
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                if let Some(memory) = &self.memory {
                    evict_if_in_place(memory, &doc.name, &e).await;
                }
                Err(e)
            }
        }
    }
}

/// A write that failed after its rename left the new version on disk: memory must not
/// go on serving the old one over it. Any other failure left the old version on disk,
/// and memory stays.
async fn evict_if_in_place(memory: &MemoryHandle, name: &CacheName, error: &FileTierError) {
    if matches!(error, FileTierError::Io(e) if durable::in_place(e)) {
        let _ = memory.evict(name).await;
    }
}

/// Handles to the tiers a save touches, and the rules it admits by.
#[derive(Clone)]
pub struct SaveFlow {
    adopter: Adopter,
    memory: MemoryHandle,
    queue: Option<RetryQueueHandle>,
    rules: LiveRules,
    /// Told of every save and adoption so that schedules move. The refresher is built
    /// with this flow, so it is set once it runs ([`Self::observed_by`]), for every clone.
    refresher: Arc<OnceLock<RefresherHandle>>,
    /// With Postgres: a client's `If-Match` is a compare-and-set on the row.
    if_match: Option<IfMatch>,
}

impl SaveFlow {
    /// Bundles the handles; `queue` is `None` without Postgres.
    pub fn new(files: FileHandle, memory: MemoryHandle, queue: Option<RetryQueueHandle>, rules: LiveRules) -> Self {
        let refresher = Arc::default();
        Self { adopter: Adopter::new(files, memory.clone()), memory, queue, rules, refresher, if_match: None }
    }

    /// The same flow, checking a client's `If-Match` against Postgres (see
    /// [`Self::save_put`]).
    pub fn checked_by(mut self, if_match: Option<IfMatch>) -> Self {
        self.if_match = if_match;
        self
    }

    /// A PUT: without `If-Match` (or without Postgres) [`Self::save`], durable on disk
    /// first; with it, a compare-and-set on the Postgres row first (see
    /// [`crate::if_match`]), then the file and memory.
    ///
    /// # Errors
    /// [`SaveError`]; nothing was acknowledged then.
    pub async fn save_put(
        &self,
        name: &CacheName,
        doc: Admitted,
        precondition: Precondition,
    ) -> Result<Arc<Document>, SaveError> {
        let Some(if_match) = self.if_match.as_ref().filter(|_| crate::if_match::is_if_match(&precondition)) else {
            return self.save(name, doc, precondition, 0).await;
        };
        let (version, base) =
            self.files().reserve(name.clone(), precondition.clone()).await.map_err(SaveError::from_file)?;
        match if_match.decide(name, doc.doc().clone(), version, base).await {
            Decided::Written(saved) => {
                // Later local saves were given versions above this one: the newer wins.
                self.adopt(saved.clone(), None, InMemory::Fill).await.map_err(SaveError::NotOnDisk)?;
                Ok(saved)
            }
            Decided::Conflict(current) => Err(SaveError::PreconditionFailed { current }),
            Decided::Unreachable(e) if if_match.single_instance() && e.is_outage() => {
                tracing::debug!(cache = %name, error = %e, "Postgres unreachable; If-Match checked here alone");
                self.save(name, doc, precondition, 0).await
            }
            Decided::Unreachable(e) => Err(SaveError::Unavailable(e)),
        }
    }

    /// From now on every clone of this flow tells `refresher` of every save (PUTs,
    /// imports, adoptions) but the refresher's own ([`Self::save_fetched`]). Set once.
    pub fn observed_by(&self, refresher: RefresherHandle) {
        let _ = self.refresher.set(refresher);
    }

    /// Whether saves made through this flow reach the refresher (set on every clone
    /// once the refresher runs).
    pub fn observed(&self) -> bool {
        self.refresher.get().is_some()
    }

    /// The file tier.
    pub fn files(&self) -> &FileHandle {
        self.adopter.files()
    }

    /// The rules in force (swapped on SIGHUP).
    pub fn rules(&self) -> &LiveRules {
        &self.rules
    }

    /// Admits `raw` by the rules of `name` in force now (see [`crate::cache_rules::Rules::admit`]).
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn admit(&self, name: &CacheName, raw: &[u8]) -> Result<Admitted, Refusal> {
        self.rules.current().admit(name, raw)
    }

    /// Writes `doc` durably, puts it in memory and queues it for Postgres. The version
    /// goes above what disk holds and above `floor` (a version known elsewhere; 0 for
    /// none). Once this returns `Ok` the save survives `kill -9` and power loss.
    ///
    /// # Errors
    /// [`SaveError`]; nothing was changed then.
    pub async fn save(
        &self,
        name: &CacheName,
        doc: Admitted,
        precondition: Precondition,
        floor: u64,
    ) -> Result<Arc<Document>, SaveError> {
        let saved = self.save_fetched(name, doc, precondition, floor).await?;
        if let Some(refresher) = self.refresher.get() {
            refresher.observed(&saved);
        }
        Ok(saved)
    }

    /// [`Self::save`] without telling the refresher: its own fetches, which it
    /// accounts for itself.
    ///
    /// # Errors
    /// [`SaveError`]; nothing was changed then.
    pub async fn save_fetched(
        &self,
        name: &CacheName,
        doc: Admitted,
        precondition: Precondition,
        floor: u64,
    ) -> Result<Arc<Document>, SaveError> {
        // Pending from before the file is written until the queue has it (see
        // `RetryQueueHandle::announce`).
        let _announced = self.queue.as_ref().map(|queue| queue.announce(name));
        let mark = self.memory.mark(name);
        let saved = match self.files().write(name.clone(), doc.into_inner(), precondition, floor).await {
            Ok(saved) => saved,
            Err(other) => {
                evict_if_in_place(&self.memory, name, &other).await;
                return Err(SaveError::from_file(other));
            }
        };
        if let Err(e) = self.memory.store(saved.clone(), &mark).await {
            // The file is durable, so the save stands; memory refills from it.
            tracing::warn!(cache = %name, error = %e, "memory not updated after save; the file will serve");
        }
        if let Some(queue) = &self.queue {
            // Tests widen the window between the durable write and the queue taking the
            // save in: `return(MS)` pauses here (without blocking the thread).
            crate::pause_point::pause_point("save::enqueue").await;
            queue.enqueue_write(name.clone(), saved.version).await;
        }
        Ok(saved)
    }

    /// Adopts `row`, a version read from Postgres: the file tier takes it if it is newer;
    /// then memory (as `in_memory` says), the refresher's schedule moves and the retry queue learns
    /// that Postgres holds that version. Returns whether the file tier took it (when it
    /// did not, a local save or delete is newer and the queue still has it to send).
    ///
    /// # Errors
    /// The file tier's error; nothing else is told then.
    pub async fn adopt(
        &self,
        row: Arc<Document>,
        expected: Option<u64>,
        in_memory: InMemory,
    ) -> Result<bool, FileTierError> {
        let written = self.adopter.adopt(row.clone(), expected, in_memory).await?;
        if written {
            self.adopted(&row);
        }
        Ok(written)
    }

    /// [`Self::adopt`] for several rows with one directory sync (the startup sync); one
    /// result per row, in order.
    ///
    /// # Errors
    /// The file tier's error for the whole batch.
    pub async fn adopt_all(
        &self,
        rows: Vec<(Arc<Document>, Option<u64>)>,
        in_memory: InMemory,
    ) -> Result<Vec<Result<bool, FileTierError>>, FileTierError> {
        let results = self.adopter.adopt_all(rows.clone(), in_memory).await?;
        for ((row, _), result) in rows.iter().zip(&results) {
            if matches!(result, Ok(true)) {
                self.adopted(row);
            }
        }
        Ok(results)
    }

    /// The file took `row`: the schedule moves, and the queue learns Postgres holds it.
    fn adopted(&self, row: &Document) {
        if let Some(refresher) = self.refresher.get() {
            refresher.observed(row);
        }
        if let Some(queue) = &self.queue {
            queue.mark_synced(row.name.clone(), row.version);
        }
    }

    /// Purges `name` from the file and memory tiers and queues the delete for Postgres
    /// (a tombstone stays on disk until Postgres has it); `DELETE` and a Strava
    /// deauthorization. Returns whether the file tier had it.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn purge(&self, name: &CacheName) -> Result<bool, SaveError> {
        let existed = self.files().remove(name.clone()).await.map_err(SaveError::Storage)?;
        self.evict(name).await;
        if let Some(queue) = &self.queue {
            queue.enqueue_delete(name.clone()).await;
        }
        Ok(existed)
    }

    /// Another instance deleted `name` at `version` (its audit says so): the local copy
    /// goes from the file tier, with no tombstone (the delete is in Postgres already),
    /// and from memory. A save made here since is newer and stays. Returns whether the
    /// copy was dropped.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn drop_deleted(&self, name: &CacheName, version: u64) -> Result<bool, FileTierError> {
        if !self.files().remove_if(name.clone(), version).await? {
            return Ok(false);
        }
        let _ = self.files().forget_tombstone(name.clone()).await;
        self.evict(name).await;
        Ok(true)
    }

    /// Retention: removes `name` from the file tier if it was saved before `cutoff`
    /// (no tombstone: retention never deletes a row early), then from memory. Returns
    /// the removed copy's `saved_at`.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn expire(
        &self,
        name: &CacheName,
        cutoff: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, FileTierError> {
        let purged = self.files().purge(name.clone(), cutoff).await?;
        if purged.is_some() {
            self.evict(name).await;
        }
        Ok(purged)
    }

    /// Memory after a removal from the file tier; a failure leaves memory to expire it.
    async fn evict(&self, name: &CacheName) {
        if let Err(e) = self.memory.evict(name).await {
            tracing::warn!(cache = %name, error = %e, "memory eviction failed");
        }
    }

    /// The leading instance checked the upstream at `checked_at` and found nothing new
    /// for `held`: [`Self::refetched`], and the refresher counts it as a fresh result.
    ///
    /// # Errors
    /// As [`Self::refetched`].
    pub async fn follow_check(&self, held: &Document, checked_at: DateTime<Utc>) -> Result<Arc<Document>, SaveError> {
        let doc = self.refetched(held, checked_at).await?;
        if let Some(refresher) = self.refresher.get() {
            refresher.observed(&doc);
        }
        Ok(doc)
    }

    /// Upstream said the held document is current (a 304): the same version, with
    /// `last_fetch` moved, replaces it on disk and in memory. No new version, nothing
    /// for Postgres, and the refresher is not told (it made the fetch).
    ///
    /// # Errors
    /// [`SaveError::Storage`] when the file could not be rewritten, [`SaveError::Changed`]
    /// when the cache changed during the fetch.
    pub async fn refetched(&self, held: &Document, last_fetch: DateTime<Utc>) -> Result<Arc<Document>, SaveError> {
        let doc = Arc::new(Document::new(
            held.name.clone(),
            held.version,
            held.checksum,
            Some(last_fetch),
            held.last_rich_fetch,
            held.saved_at,
            held.body.clone(),
        ));
        let mark = self.memory.mark(&held.name);
        match self.files().touch(doc.clone()).await {
            Ok(true) => {}
            Ok(false) => return Err(SaveError::Changed),
            Err(e) => return Err(SaveError::Storage(e)),
        }
        if let Err(e) = self.memory.store(doc.clone(), &mark).await {
            tracing::warn!(cache = %held.name, error = %e, "memory not updated after a 304; the file will serve");
        }
        Ok(doc)
    }
}
