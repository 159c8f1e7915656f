//! The read flow of SPEC §2 over the running actors, as the API calls them, the
//! runtime's one save flow ([`SaveFlow`]) for its writes, and the narrow queries the
//! API answers from (the queue's status, the refresher's view, quarantine).
//!
//! This is a handle, not an actor: it holds addresses and the memory snapshot and owns
//! no state of its own. Nothing below the runtime takes it: each module is handed what
//! it uses.

use crate::domain::{CacheName, Document};
use crate::files::FileHandle;
use crate::memory::{LoadError, LoadOutcome, MemoryHandle, MemoryView, Tier};
use crate::refresher::{RefreshError, RefresherHandle};
use crate::retry_queue::RetryQueueHandle;
use crate::save_flow::SaveFlow;
use crate::store::StoreHandle;
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
    pub tier: Tier,
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

/// The actors the read flow and the API's queries reach.
#[derive(Clone)]
pub struct TierHandles {
    /// Memory tier.
    pub memory: MemoryHandle,
    /// File tier.
    pub files: FileHandle,
    /// The memory snapshot.
    pub view: MemoryView,
    /// Postgres, when enabled.
    pub store: Option<StoreHandle>,
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

/// Handles to the tiers, cloned into every API worker.
#[derive(Clone)]
pub struct Tiers {
    handles: TierHandles,
    saver: SaveFlow,
    policy: ReadPolicy,
    /// `refresh.emergency`, shared by every clone so that a reload reaches them all.
    emergency: Arc<AtomicBool>,
}

impl Tiers {
    /// The read flow over `handles`, writing through `saver` (the runtime's one).
    pub fn new(handles: TierHandles, saver: SaveFlow, policy: ReadPolicy) -> Self {
        Self { handles, saver, policy, emergency: Arc::new(AtomicBool::new(policy.emergency)) }
    }

    /// SIGHUP: turns the emergency refresh on or off for every clone.
    pub fn set_emergency(&self, on: bool) {
        self.emergency.store(on, Ordering::Relaxed);
    }

    /// The memory snapshot, for hits without a message.
    pub fn view(&self) -> &MemoryView {
        &self.handles.view
    }

    /// The file tier handle.
    pub fn files(&self) -> &FileHandle {
        &self.handles.files
    }

    /// The Postgres store, when enabled.
    pub fn store(&self) -> Option<&StoreHandle> {
        self.handles.store.as_ref()
    }

    /// The retry queue, when Postgres is enabled.
    pub fn queue(&self) -> Option<&RetryQueueHandle> {
        self.handles.queue.as_ref()
    }

    /// The refresher, when any cache has a source.
    pub fn refresher(&self) -> Option<&RefresherHandle> {
        self.handles.refresher.as_ref()
    }

    /// The save flow: admission, save, adoption, purge. Every save made through it
    /// moves the refresher's schedule.
    pub fn saver(&self) -> &SaveFlow {
        &self.saver
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
            if let Some(entry) = self.handles.view.fresh(name, ttl) {
                return Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier: Tier::Memory }));
            }
        } else if let Ok(Some(entry)) = self.handles.memory.get(name).await {
            if entry.is_fresh(ttl) {
                return Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier: Tier::Memory }));
            }
        }
        match self.handles.memory.load(name).await {
            Ok(LoadOutcome::Found(entry, tier)) => Ok(Some(ReadOutcome { doc: entry.doc.clone(), tier })),
            Ok(LoadOutcome::Missing) => Ok(None),
            Err(e) => match self.handles.view.get(name) {
                Some(expired) => {
                    tracing::warn!(cache = %name, error = %e, "every tier failed; serving the expired copy");
                    Ok(Some(ReadOutcome { doc: expired.doc.clone(), tier: Tier::Stale }))
                }
                None => Err(ReadError::Failed(e)),
            },
        }
    }

    /// Nothing in any tier: one upstream call however many readers wait.
    async fn emergency(&self, name: &CacheName) -> Result<ReadOutcome, ReadError> {
        let Some(refresher) = self.handles.refresher.as_ref().filter(|_| self.emergency.load(Ordering::Relaxed)) else {
            return Err(ReadError::Missing);
        };
        match refresher.refresh_now(name.clone(), true).await {
            Ok(Some(doc)) => {
                tracing::info!(cache = %name, version = doc.version, "served from an emergency refresh");
                Ok(ReadOutcome { doc, tier: Tier::Refresh })
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
        let in_memory = self.handles.view.get(name).is_some();
        let existed = self.saver.purge(name).await?;
        Ok(existed || in_memory)
    }
}
