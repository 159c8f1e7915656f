//! Messages the memory-tier actor accepts.

use super::{Entry, LoadError, Mark, ServedFrom};
use crate::domain::{CacheName, Document};
use crate::supervisor::ActorPanicked;
use actix::Message;
use std::sync::Arc;

/// Look `name` up in memory (fresh or not). The API normally reads the snapshot
/// instead; builds with failpoints send this so `memory::get` can fire.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Arc<Entry>>, ActorPanicked>")]
pub struct Get {
    /// The cache.
    pub name: CacheName,
}

/// What a load found.
#[derive(Debug, Clone)]
pub enum LoadOutcome {
    /// Memory now holds this entry; `ServedFrom` says where it came from.
    Found(Arc<Entry>, ServedFrom),
    /// No tier has the cache.
    Missing,
}

/// Return the fresh entry for `name`, loading it through the tiers below if needed.
/// Single-flight: concurrent loads of one cache share one read.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<LoadOutcome, LoadError>")]
pub struct Load {
    /// The cache.
    pub name: CacheName,
}

/// What the tiers below memory gave a load.
pub(super) type Loaded = Result<Option<(Arc<Document>, ServedFrom)>, LoadError>;

/// Internal: a load finished, or panicked (the outer error).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct LoadDone {
    pub name: CacheName,
    /// The load's mark, which also tells it from a load started after a restart.
    pub mark: Mark,
    pub result: Result<Loaded, ActorPanicked>,
}

/// Take a version adopted from elsewhere if memory holds (or is loading) its cache
/// (see [`super::MemoryTier::follow`]); answers whether it did.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, ActorPanicked>")]
pub struct Follow {
    /// The adopted document.
    pub doc: Arc<Document>,
    /// Taken before the file tier took it ([`super::MemoryHandle::mark`]).
    pub mark: Mark,
}
