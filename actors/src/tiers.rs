//! The read flow over the running actors, as the API calls them, DELETE's purge, and the
//! narrow queries the API, the status snapshot and the health probe answer from (the
//! queue's status, the refresher's view, quarantine, the files on disk).
//!
//! This is a handle, not an actor: it holds addresses and the memory snapshot and owns
//! no state of its own. It hands out no handles: writers are given the runtime's one
//! [`SaveFlow`] themselves, and nothing below the runtime takes it.

use crate::domain::{CacheName, Document};
use crate::files::{FileHandle, FileTierError, OnDisk};
use crate::memory::{LoadError, LoadOutcome, MemoryHandle, MemoryView, ServedFrom};
use crate::refresher::{Deauthorized, PushEvent, RefreshError, RefreshView, RefresherHandle};
use crate::retry_queue::{OutageView, QueueStatus, RetryQueueHandle};
use crate::save_flow::SaveFlow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::save_flow::SaveError;

/// A read's answer.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// The document served.
    pub doc: Arc<Document>,
    /// Which tier answered (before the caller applies schedule staleness).
    pub tier: ServedFrom,
}

/// Why a read produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No tier has the cache and no refresh is possible.
    #[error("no tier holds this cache")]
    Missing,
    /// Tiers failed and no copy at all is held.
    #[error(transparent)]
    Failed(#[from] LoadError),
    /// Nothing anywhere, and the emergency refresh failed.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
}

/// The actors the read flow and the queries reach.
#[derive(Clone)]
pub struct ReadPeers {
    /// Memory tier.
    pub memory: MemoryHandle,
    /// File tier.
    pub files: FileHandle,
    /// The memory snapshot.
    pub view: MemoryView,
    /// Retry queue, when Postgres is enabled.
    pub queue: Option<RetryQueueHandle>,
    /// Refresher, when any cache has a source.
    pub refresher: Option<RefresherHandle>,
}

/// How reads behave.
#[derive(Debug, Clone, Copy)]
pub struct ReadPolicy {
    /// `memory.ttl`.
    pub ttl: Duration,
    /// Send memory hits through the actor (only so the `memory::get` failpoint can fire).
    pub hits_by_message: bool,
    /// `refresh.emergency`: refresh from upstream when no tier has the cache.
    pub emergency: bool,
}

/// The read flow and the narrow queries over the tiers, cloned into every API worker.
#[derive(Clone)]
pub struct Tiers {
    peers: ReadPeers,
    saver: SaveFlow,
    policy: ReadPolicy,
    /// `refresh.emergency`, shared by every clone so that a reload reaches them all.
    emergency: Arc<AtomicBool>,
}

impl Tiers {
    /// The read flow over `peers`, purging through `saver` (the runtime's one).
    pub fn new(peers: ReadPeers, saver: SaveFlow, policy: ReadPolicy) -> Self {
        Self { peers, saver, policy, emergency: Arc::new(AtomicBool::new(policy.emergency)) }
    }

    /// SIGHUP: turns the emergency refresh on or off for every clone.
    pub fn set_emergency(&self, on: bool) {
        self.emergency.store(on, Ordering::Relaxed);
    }

    /// The memory snapshot, for hits without a message.
    pub fn view(&self) -> &MemoryView {
        &self.peers.view
    }

    /// What each cache's file holds (the status snapshot, the health probe's round trip).
    ///
    /// # Errors
    /// The file tier failing twice or being gone.
    pub async fn on_disk(&self) -> Result<HashMap<CacheName, OnDisk>, FileTierError> {
        self.peers.files.list().await
    }

    /// Whether the file of `name` was found corrupt and nothing replaced it yet.
    pub async fn quarantined(&self, name: &CacheName) -> bool {
        self.peers.files.quarantined(name).await
    }

    /// Whether Postgres acknowledged exactly `version` of `name` (false without a
    /// version); `None` without Postgres.
    pub fn postgres_synced(&self, name: &CacheName, version: Option<u64>) -> Option<bool> {
        self.peers.queue.as_ref().map(|q| version.is_some_and(|v| q.acknowledged(name, v)))
    }

    /// The retry queue as the status snapshot and the list of caches show it, and why
    /// saves cannot reach Postgres (if so); `None` without Postgres.
    pub fn postgres_status(&self) -> Option<(QueueStatus, Option<OutageView>)> {
        self.peers.queue.as_ref().map(|q| (q.status(), q.outage()))
    }

    /// How many caches have a save or a delete not yet in Postgres; `None` without Postgres.
    pub fn pending_saves(&self) -> Option<usize> {
        self.peers.queue.as_ref().map(RetryQueueHandle::pending_count)
    }

    /// What the refresher publishes about each cache (failures, schedule, withdrawn
    /// authorizations); `None` when no cache has a source.
    pub fn refresh_view(&self) -> Option<&RefreshView> {
        self.peers.refresher.as_ref().map(RefresherHandle::view)
    }

    /// Why `name` cannot be refreshed until its owner authorizes the app again, if so.
    pub fn deauthorized(&self, name: &CacheName) -> Option<Deauthorized> {
        self.refresh_view().and_then(|v| v.deauthorized(name))
    }

    /// `POST .../refresh`: starts a refresh of `name` (a full re-read with `full`)
    /// without waiting for it; `None` when no refresher is running.
    pub async fn refresh_on_request(&self, name: &CacheName, full: bool) -> Option<Result<(), RefreshError>> {
        let refresher = self.peers.refresher.as_ref()?;
        Some(if full {
            refresher.refresh_full(name.clone()).await
        } else {
            refresher.refresh_now(name.clone(), false).await.map(|_| ())
        })
    }

    /// Hands a webhook event to the refresher: `Some(false)` when its queue is full,
    /// `None` when no refresher is running.
    pub fn strava_push(&self, event: PushEvent) -> Option<bool> {
        self.peers.refresher.as_ref().map(|r| r.strava_push(event))
    }

    /// Read flow: memory (fresh within the TTL) → file → Postgres (single-flight) →
    /// an emergency refresh (single-flight) → an expired copy marked stale when every
    /// tier failed.
    ///
    /// # Errors
    /// [`ReadError`] when nothing can be served.
    pub async fn read(&self, name: &CacheName) -> Result<ReadOutcome, ReadError> {
        match self.peek(name).await? {
            Some(found) => Ok(found),
            None => self.emergency(name).await,
        }
    }

    /// The read flow without its last step: what the tiers hold, never an upstream
    /// call (meta and the list of caches must not spend the upstream's budget).
    /// `Ok(None)` when no tier has the cache.
    ///
    /// # Errors
    /// [`ReadError::Failed`] when a tier failed and no expired copy is held.
    pub async fn peek(&self, name: &CacheName) -> Result<Option<ReadOutcome>, ReadError> {
        let ttl = self.policy.ttl;
        if !self.policy.hits_by_message {
            if let Some(entry) = self.peers.view.fresh(name, ttl) {
                return Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier: ServedFrom::Memory }));
            }
        } else if let Ok(Some(entry)) = self.peers.memory.get(name).await {
            if entry.is_fresh(ttl) {
                return Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier: ServedFrom::Memory }));
            }
        }
        match self.peers.memory.load(name).await {
            Ok(LoadOutcome::Found(entry, tier)) => Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier })),
            Ok(LoadOutcome::Missing) => Ok(None),
            Err(e) => match self.peers.view.get(name) {
                Some(expired) => {
                    tracing::warn!(cache = %name, error = %e, "every tier failed; serving the expired copy");
                    Ok(Some(ReadOutcome { doc: expired.doc.clone(), tier: ServedFrom::Stale }))
                }
                None => Err(ReadError::Failed(e)),
            },
        }
    }

    /// Nothing in any tier: one upstream call however many readers wait.
    async fn emergency(&self, name: &CacheName) -> Result<ReadOutcome, ReadError> {
        let Some(refresher) = self.peers.refresher.as_ref().filter(|_| self.emergency.load(Ordering::Relaxed)) else {
            return Err(ReadError::Missing);
        };
        match refresher.refresh_now(name.clone(), true).await {
            Ok(Some(doc)) => {
                tracing::info!(cache = %name, version = doc.version, "served from an emergency refresh");
                Ok(ReadOutcome { doc, tier: ServedFrom::Refresh })
            }
            Ok(None) => Err(ReadError::Missing),
            Err(RefreshError::NoSource(_) | RefreshError::Deauthorized(_)) => Err(ReadError::Missing),
            Err(e) => Err(ReadError::Refresh(e)),
        }
    }

    /// Purges `name` from the file and memory tiers and queues the delete for Postgres
    /// (a tombstone stays on disk until Postgres has it). Returns whether anything existed.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn delete(&self, name: &CacheName) -> Result<bool, SaveError> {
        let in_memory = self.peers.view.get(name).is_some();
        let existed = self.saver.purge(name).await?;
        Ok(existed || in_memory)
    }
}
