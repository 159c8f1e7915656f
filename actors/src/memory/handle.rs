//! A typed handle to the memory tier: stores and evicts on the shared [`Shelf`] at once,
//! on the caller's thread; asks the actor for the rest, retrying once when the actor
//! failed on a request, so requests arriving around a restart are answered.

use super::messages::{Follow, Get, Load, LoadOutcome};
use super::{Entry, LoadError, Mark, MemoryTier, Shelf};
use crate::domain::{CacheName, Document};
use crate::supervisor::ActorPanicked;
use actix::Addr;
use std::sync::Arc;

/// Cheap to clone; the address survives restarts, and so does the shelf (a restarted
/// actor clears it).
#[derive(Clone)]
pub struct MemoryHandle {
    addr: Addr<MemoryTier>,
    shelf: Arc<Shelf>,
}

impl MemoryHandle {
    /// Wraps the supervised address and the shelf its actor was built with
    /// ([`super::MemoryView::shelf`]).
    pub fn new(addr: Addr<MemoryTier>, shelf: Arc<Shelf>) -> Self {
        Self { addr, shelf }
    }

    /// See [`Get`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn get(&self, name: &CacheName) -> Result<Option<Arc<Entry>>, ActorPanicked> {
        for _ in 0..2 {
            if let Ok(Ok(found)) = self.addr.send(Get { name: name.clone() }).await {
                return Ok(found);
            }
        }
        Err(ActorPanicked(super::ACTOR))
    }

    /// See [`Load`]. A load cut short by a restart is tried once more.
    ///
    /// # Errors
    /// [`LoadError`] when the tiers below failed.
    pub async fn load(&self, name: &CacheName) -> Result<LoadOutcome, LoadError> {
        let mut last = LoadError::Unavailable(None);
        for _ in 0..2 {
            match self.addr.send(Load { name: name.clone() }).await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(e)) => last = e,
                Err(e) => last = LoadError::Unavailable(Some(e)),
            }
        }
        Err(last)
    }

    /// To take before the tiers below are written for `name` (a save, an adoption),
    /// and to store what they took with: see [`Shelf::mark`].
    pub fn mark(&self, name: &CacheName) -> Mark {
        self.shelf.mark(name)
    }

    /// Puts `doc` in memory unless a newer version is there or the cache was evicted
    /// since `mark` (see [`Shelf::store_marked`]), on this thread: a save's answer does
    /// not wait for the actor's thread. `None` when memory did not take it.
    ///
    /// # Errors
    /// None today; kept fallible for callers written against the actor.
    #[allow(clippy::unused_async)]
    pub async fn store(&self, doc: Arc<Document>, mark: &Mark) -> Result<Option<Arc<Entry>>, ActorPanicked> {
        Ok(self.shelf.store_marked(doc, mark))
    }

    /// See [`Follow`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn follow(&self, doc: Arc<Document>, mark: &Mark) -> Result<bool, ActorPanicked> {
        for _ in 0..2 {
            if let Ok(Ok(took)) = self.addr.send(Follow { doc: doc.clone(), mark: mark.clone() }).await {
                return Ok(took);
            }
        }
        Err(ActorPanicked(super::ACTOR))
    }

    /// Drops `name` from memory, on this thread (see [`Shelf::evict`]).
    ///
    /// # Errors
    /// None today; kept fallible for callers written against the actor.
    #[allow(clippy::unused_async)]
    pub async fn evict(&self, name: &CacheName) -> Result<(), ActorPanicked> {
        self.shelf.evict(name);
        Ok(())
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
