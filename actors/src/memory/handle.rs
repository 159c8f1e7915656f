//! A typed handle to the memory-tier actor; retries once when the actor failed on a
//! request, so requests arriving around a restart are answered.

use super::messages::{Evict, Follow, Get, Load, LoadOutcome, Store};
use super::{Entry, LoadError, MemoryTier};
use crate::domain::{CacheName, Document};
use crate::supervisor::ActorPanicked;
use actix::Addr;
use std::sync::Arc;

/// Cheap to clone; the address survives restarts.
#[derive(Clone)]
pub struct MemoryHandle {
    addr: Addr<MemoryTier>,
}

impl MemoryHandle {
    /// Wraps the supervised address.
    pub fn new(addr: Addr<MemoryTier>) -> Self {
        Self { addr }
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

    /// See [`Store`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn store(&self, doc: Arc<Document>) -> Result<Arc<Entry>, ActorPanicked> {
        for _ in 0..2 {
            if let Ok(Ok(entry)) = self.addr.send(Store { doc: doc.clone() }).await {
                return Ok(entry);
            }
        }
        Err(ActorPanicked(super::ACTOR))
    }

    /// See [`Follow`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn follow(&self, doc: Arc<Document>) -> Result<bool, ActorPanicked> {
        for _ in 0..2 {
            if let Ok(Ok(took)) = self.addr.send(Follow { doc: doc.clone() }).await {
                return Ok(took);
            }
        }
        Err(ActorPanicked(super::ACTOR))
    }

    /// See [`Evict`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn evict(&self, name: &CacheName) -> Result<(), ActorPanicked> {
        for _ in 0..2 {
            if let Ok(Ok(())) = self.addr.send(Evict { name: name.clone() }).await {
                return Ok(());
            }
        }
        Err(ActorPanicked(super::ACTOR))
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
