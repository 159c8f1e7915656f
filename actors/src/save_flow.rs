//! The save flow of SPEC §2 up to the acknowledgement, shared by PUTs and refreshes:
//! durable file, then memory, then the retry queue takes it to Postgres.

use crate::domain::{CacheName, Document, NewDocument, Precondition};
use crate::files::{durable, FileHandle, FileTierError};
use crate::memory::MemoryHandle;
use crate::retry_queue::RetryQueueHandle;
use chrono::{DateTime, Utc};
use std::sync::Arc;

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

/// Handles to the tiers a save touches.
#[derive(Clone)]
pub struct SaveFlow {
    files: FileHandle,
    memory: MemoryHandle,
    queue: Option<RetryQueueHandle>,
}

impl SaveFlow {
    /// Bundles the handles; `queue` is `None` without Postgres.
    pub fn new(files: FileHandle, memory: MemoryHandle, queue: Option<RetryQueueHandle>) -> Self {
        Self { files, memory, queue }
    }

    /// The file tier.
    pub fn files(&self) -> &FileHandle {
        &self.files
    }

    /// Writes `doc` durably, puts it in memory and queues it for Postgres. Once this
    /// returns `Ok` the save survives `kill -9` and power loss.
    ///
    /// # Errors
    /// [`SaveError`]; nothing was changed then.
    pub async fn save(
        &self,
        name: &CacheName,
        doc: NewDocument,
        precondition: Precondition,
    ) -> Result<Arc<Document>, SaveError> {
        let saved = match self.files.write(name.clone(), doc, precondition, 0).await {
            Ok(saved) => saved,
            Err(FileTierError::PreconditionFailed { current }) => {
                return Err(SaveError::PreconditionFailed { current })
            }
            Err(other) => {
                // Failing after its rename, the write left the new version on disk: memory
                // must not keep serving the old one over it. Otherwise memory stays, as
                // the old version is still the one on disk.
                if matches!(&other, FileTierError::Io(e) if durable::in_place(e)) {
                    let _ = self.memory.evict(name).await;
                }
                return Err(SaveError::Storage(other.to_string()));
            }
        };
        if let Err(e) = self.memory.store(saved.clone()).await {
            // The file is durable, so the save stands; memory refills from it.
            tracing::warn!(cache = %name, error = %e, "memory not updated after save; the file will serve");
        }
        if let Some(queue) = &self.queue {
            queue.enqueue_write(name.clone(), saved.version);
        }
        Ok(saved)
    }

    /// Purges `name` from the file and memory tiers and queues the delete for Postgres
    /// (a tombstone stays on disk until Postgres has it); `DELETE` and a Strava
    /// deauthorization. Returns whether the file tier had it.
    ///
    /// # Errors
    /// When the file could not be removed.
    pub async fn purge(&self, name: &CacheName) -> Result<bool, SaveError> {
        let existed = self.files.remove(name.clone()).await.map_err(|e| SaveError::Storage(e.to_string()))?;
        if let Err(e) = self.memory.evict(name).await {
            tracing::warn!(cache = %name, error = %e, "memory eviction failed");
        }
        if let Some(queue) = &self.queue {
            queue.enqueue_delete(name.clone());
        }
        Ok(existed)
    }

    /// Upstream said the held document is current (a 304): the same version, with
    /// `last_fetch` moved, replaces it on disk and in memory. No new version, nothing
    /// for Postgres.
    ///
    /// # Errors
    /// [`SaveError::Storage`] when the file could not be rewritten or the cache changed
    /// during the fetch.
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
        match self.files.touch(doc.clone()).await {
            Ok(true) => {}
            Ok(false) => return Err(SaveError::Storage("the cache changed during the fetch".into())),
            Err(e) => return Err(SaveError::Storage(e.to_string())),
        }
        if let Err(e) = self.memory.store(doc.clone()).await {
            tracing::warn!(cache = %held.name, error = %e, "memory not updated after a 304; the file will serve");
        }
        Ok(doc)
    }
}
