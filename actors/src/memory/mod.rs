//! The memory tier: the newest document of each cache as ready-to-send bytes.
//!
//! The actor is the only writer. After every change it publishes an immutable snapshot
//! (`arc-swap`) that the API reads without a message, so a hit costs one atomic load and
//! a hash lookup. Misses go through the actor's `Load`, which is single-flight per cache:
//! concurrent readers of a cold cache share one read of the tiers below.

mod actor;
mod handle;
mod handlers;
mod loader;
mod messages;

pub use handle::MemoryHandle;
pub use loader::{LoadError, Loader};
pub use messages::{Evict, Follow, Get, Load, LoadOutcome, Store};

use crate::domain::{CacheName, Document};
use crate::metrics::Metrics;
use crate::supervisor::FailureReporter;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Memory.label();

/// The tier that answered a read (`X-Cache-Tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Fresh in memory.
    Memory,
    /// Loaded from the envelope file.
    File,
    /// Loaded from Postgres.
    Postgres,
    /// Fetched upstream by an emergency refresh.
    Refresh,
    /// Past its schedule, or an expired copy served because every tier failed.
    Stale,
}

impl Tier {
    /// Every tier, in [`Tier::index`] order.
    pub const ALL: [Tier; 5] = [Tier::Memory, Tier::File, Tier::Postgres, Tier::Refresh, Tier::Stale];

    /// Position in [`Tier::ALL`], for per-tier arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The header and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File => "file",
            Self::Postgres => "postgres",
            Self::Refresh => "refresh",
            Self::Stale => "stale",
        }
    }
}

/// One cache held in memory.
#[derive(Debug)]
pub struct Entry {
    /// The document.
    pub doc: Arc<Document>,
    /// When memory got it: the TTL runs from here.
    pub stored_at: Instant,
}

impl Entry {
    /// Whether the entry is within `ttl`.
    pub fn is_fresh(&self, ttl: Duration) -> bool {
        self.stored_at.elapsed() < ttl
    }
}

/// The published, immutable view of the memory tier.
pub type Snapshot = HashMap<CacheName, Arc<Entry>>;

/// Reads the latest snapshot; cloned into every API worker.
#[derive(Clone)]
pub struct MemoryView(Arc<ArcSwap<Snapshot>>);

impl MemoryView {
    /// The entry for `name`, fresh or not.
    #[inline]
    pub fn get(&self, name: &CacheName) -> Option<Arc<Entry>> {
        self.0.load().get(name).cloned()
    }

    /// The entry for `name` if it is within `ttl`.
    #[inline]
    pub fn fresh(&self, name: &CacheName, ttl: Duration) -> Option<Arc<Entry>> {
        self.0.load().get(name).filter(|e| e.is_fresh(ttl)).cloned()
    }
}

/// The memory tier's state.
pub struct MemoryTier {
    entries: Snapshot,
    published: Arc<ArcSwap<Snapshot>>,
    loads: HashMap<CacheName, Vec<oneshot::Sender<Result<LoadOutcome, LoadError>>>>,
    loader: Loader,
    ttl: Duration,
    reporter: FailureReporter,
    #[allow(dead_code)]
    metrics: Arc<Metrics>,
}

impl MemoryTier {
    /// An empty memory tier whose misses read through `loader`.
    pub fn new(loader: Loader, ttl: Duration, reporter: FailureReporter, metrics: Arc<Metrics>) -> (Self, MemoryView) {
        let published = Arc::new(ArcSwap::from_pointee(Snapshot::new()));
        let view = MemoryView(published.clone());
        (Self { entries: Snapshot::new(), published, loads: HashMap::new(), loader, ttl, reporter, metrics }, view)
    }

    /// Puts `doc` in memory unless a newer version is already there. Returns the entry
    /// memory holds afterwards.
    pub fn store(&mut self, doc: Arc<Document>) -> Arc<Entry> {
        if let Some(existing) = self.entries.get(&doc.name) {
            if existing.doc.version > doc.version {
                return existing.clone();
            }
        }
        let entry = Arc::new(Entry { doc, stored_at: Instant::now() });
        self.entries.insert(entry.doc.name.clone(), entry.clone());
        self.publish();
        entry
    }

    /// A version adopted from elsewhere (a row of Postgres, a rebase): replaces what
    /// memory holds of that cache, or joins a load in flight (whose older result then
    /// cannot replace it); a cold cache stays cold, read from the file when asked for.
    /// Returns whether memory took it.
    pub fn follow(&mut self, doc: Arc<Document>) -> bool {
        if !self.entries.contains_key(&doc.name) && !self.loads.contains_key(&doc.name) {
            return false;
        }
        self.store(doc);
        true
    }

    /// Drops `name` from memory.
    pub fn evict(&mut self, name: &CacheName) {
        if self.entries.remove(name).is_some() {
            self.publish();
        }
    }

    /// Forgets everything (after a restart memory is rebuilt lazily from the tiers below).
    pub fn reset(&mut self) {
        self.entries.clear();
        self.loads.clear();
        self.publish();
    }

    fn publish(&self) {
        self.published.store(Arc::new(self.entries.clone()));
    }
}
