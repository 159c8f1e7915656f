//! The read and save flows of SPEC §2 over the running actors, as the API calls them.
//!
//! This is a handle, not an actor: it holds addresses and the memory snapshot and owns
//! no state of its own.

use crate::domain::{CacheName, Document, NewDocument, Precondition};
use crate::files::{FileHandle, FileTierError};
use crate::memory::{LoadError, LoadOutcome, MemoryHandle, MemoryView, Tier};
use crate::retry_queue::RetryQueueHandle;
use crate::store::StoreHandle;
use std::sync::Arc;
use std::time::Duration;

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
    /// No tier has the cache.
    #[error("no tier holds this cache")]
    Missing,
    /// Tiers failed and no copy at all is held.
    #[error(transparent)]
    Failed(#[from] LoadError),
}

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
    Storage(String),
}

/// Handles to the tiers, cloned into every API worker.
#[derive(Clone)]
pub struct Tiers {
    memory: MemoryHandle,
    files: FileHandle,
    view: MemoryView,
    ttl: Duration,
    hits_by_message: bool,
    store: Option<StoreHandle>,
    queue: Option<RetryQueueHandle>,
}

impl Tiers {
    /// Bundles the running actors. `hits_by_message` sends even memory hits through
    /// the memory actor (only so that the `memory::get` failpoint can fire in tests).
    pub fn new(
        memory: MemoryHandle,
        files: FileHandle,
        view: MemoryView,
        ttl: Duration,
        hits_by_message: bool,
        store: Option<StoreHandle>,
        queue: Option<RetryQueueHandle>,
    ) -> Self {
        Self { memory, files, view, ttl, hits_by_message, store, queue }
    }

    /// The Postgres store, when enabled.
    pub fn store(&self) -> Option<&StoreHandle> {
        self.store.as_ref()
    }

    /// The retry queue, when Postgres is enabled.
    pub fn queue(&self) -> Option<&RetryQueueHandle> {
        self.queue.as_ref()
    }

    /// The memory snapshot, for hits without a message.
    pub fn view(&self) -> &MemoryView {
        &self.view
    }

    /// The file tier handle.
    pub fn files(&self) -> &FileHandle {
        &self.files
    }

    /// The memory tier handle.
    pub fn memory(&self) -> &MemoryHandle {
        &self.memory
    }

    /// Read flow: memory (fresh within the TTL) → the tiers below (single-flight) → an
    /// expired copy marked stale when every tier failed.
    ///
    /// # Errors
    /// [`ReadError::Missing`] when no tier has it, [`ReadError::Failed`] when tiers
    /// failed and nothing at all is held.
    pub async fn read(&self, name: &CacheName) -> Result<ReadOutcome, ReadError> {
        if !self.hits_by_message {
            if let Some(entry) = self.view.fresh(name, self.ttl) {
                return Ok(ReadOutcome { doc: entry.doc.clone(), tier: Tier::Memory });
            }
        } else if let Ok(Some(entry)) = self.memory.get(name).await {
            if entry.is_fresh(self.ttl) {
                return Ok(ReadOutcome { doc: entry.doc.clone(), tier: Tier::Memory });
            }
        }
        match self.memory.load(name).await {
            Ok(LoadOutcome::Found(entry, tier)) => Ok(ReadOutcome { doc: entry.doc.clone(), tier }),
            Ok(LoadOutcome::Missing) => Err(ReadError::Missing),
            Err(e) => match self.view.get(name) {
                Some(expired) => {
                    tracing::warn!(cache = %name, error = %e, "every tier failed; serving the expired copy");
                    Ok(ReadOutcome { doc: expired.doc.clone(), tier: Tier::Stale })
                }
                None => Err(ReadError::Failed(e)),
            },
        }
    }

    /// Save flow up to the acknowledgement: durable file, then memory.
    ///
    /// # Errors
    /// [`SaveError`]; nothing was changed then.
    pub async fn save(
        &self,
        name: &CacheName,
        doc: NewDocument,
        precondition: Precondition,
    ) -> Result<Arc<Document>, SaveError> {
        let saved = self.files.write(name.clone(), doc, precondition, 0).await.map_err(|e| match e {
            FileTierError::PreconditionFailed { current } => SaveError::PreconditionFailed { current },
            other => SaveError::Storage(other.to_string()),
        })?;
        if let Err(e) = self.memory.store(saved.clone()).await {
            // The file is durable, so the save stands; memory refills from it.
            tracing::warn!(cache = %name, error = %e, "memory not updated after save; the file will serve");
        }
        if let Some(queue) = &self.queue {
            queue.enqueue_write(name.clone(), saved.version);
        }
        Ok(saved)
    }

    /// Purges `name` from the file and memory tiers. Returns whether anything existed.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn delete(&self, name: &CacheName) -> Result<bool, SaveError> {
        let existed = self.files.remove(name.clone()).await.map_err(|e| SaveError::Storage(e.to_string()))?;
        let in_memory = self.view.get(name).is_some();
        if let Err(e) = self.memory.evict(name).await {
            tracing::warn!(cache = %name, error = %e, "memory eviction failed");
        }
        if let Some(queue) = &self.queue {
            queue.enqueue_delete(name.clone());
        }
        Ok(existed || in_memory)
    }
}
