//! The memory tier: the newest document of each cache as ready-to-send bytes.
//!
//! The entries sit on a [`Shelf`] shared by the actor and every [`MemoryHandle`]: after
//! every change the shelf publishes an immutable snapshot (`arc-swap`) that the API reads
//! without a message, so a hit costs one atomic load and a hash lookup. A store or an
//! evict is made by the caller on its own thread under the shelf's lock (a save does not
//! wait for the actor's thread to wake up). Misses go through the actor's `Load`, which
//! is single-flight per cache: concurrent readers of a cold cache share one read of the
//! tiers below. Whatever reads or writes a cache below memory takes a [`Mark`] first; an
//! evict (a DELETE) voids the marks of its cache, so nothing that started before it is
//! stored after it.

mod actor;
mod handle;
mod handlers;
mod loader;
mod marks;
mod messages;

pub use handle::MemoryHandle;
pub use loader::{LoadError, Loader};
pub use marks::Mark;
use marks::Marks;
pub use messages::{Follow, Get, Load, LoadOutcome};

/// A reader waiting on a load.
type Waiter = oneshot::Sender<Result<LoadOutcome, LoadError>>;

/// A load in flight: its readers, and the mark its result is stored with.
struct Loading {
    waiters: Vec<Waiter>,
    mark: Mark,
}

use crate::domain::{CacheName, Document};
use crate::metrics::Metrics;
use crate::supervisor::FailureReporter;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Memory.label();

/// The tier that answered a read (`X-Cache-Tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServedFrom {
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

impl ServedFrom {
    /// Every tier, in [`ServedFrom::index`] order.
    pub const ALL: [ServedFrom; 5] =
        [ServedFrom::Memory, ServedFrom::File, ServedFrom::Postgres, ServedFrom::Refresh, ServedFrom::Stale];

    /// Position in [`ServedFrom::ALL`], for per-tier arrays.
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

/// The entries of the memory tier and their published snapshot. Every change is made
/// under the lock and published before it is released, so snapshots appear in the
/// order of the changes.
pub struct Shelf {
    held: Mutex<Held>,
    published: ArcSwap<Snapshot>,
}

/// What the shelf's lock guards.
#[derive(Default)]
struct Held {
    entries: Snapshot,
    marks: Marks,
}

impl Default for Shelf {
    /// An empty shelf.
    fn default() -> Self {
        Self::new()
    }
}

impl Shelf {
    fn new() -> Self {
        Self { held: Mutex::new(Held::default()), published: ArcSwap::from_pointee(Snapshot::new()) }
    }

    /// Runs `change` on what the lock guards and publishes the entries if it says they
    /// changed. Nothing in a change can leave them half-updated, so a poisoned lock is
    /// taken as is.
    fn change<T>(&self, change: impl FnOnce(&mut Held) -> (T, bool)) -> T {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (result, changed) = change(&mut held);
        if changed {
            self.published.store(Arc::new(held.entries.clone()));
        }
        result
    }

    /// The mark to store what is about to be read or written below memory with.
    pub fn mark(&self, name: &CacheName) -> Mark {
        self.change(|held| (held.marks.take(name), false))
    }

    /// Puts `doc` in memory unless a newer version is already there. Returns the entry
    /// memory holds afterwards.
    #[cfg(test)]
    fn store(&self, doc: Arc<Document>) -> Arc<Entry> {
        self.change(|held| Self::put(&mut held.entries, doc))
    }

    /// [`Self::store`] if the cache was not evicted since `mark` was taken; otherwise
    /// `None`, and memory holds nothing older than `doc` (whether `doc` came before or
    /// after the evict is not known, so memory goes cold and the file answers).
    pub fn store_marked(&self, doc: Arc<Document>, mark: &Mark) -> Option<Arc<Entry>> {
        self.change(|held| {
            if !held.marks.holds(&doc.name, mark) {
                return (None, Self::drop_older(&mut held.entries, &doc));
            }
            let (entry, changed) = Self::put(&mut held.entries, doc);
            (Some(entry), changed)
        })
    }

    /// [`Self::store_marked`] only if memory holds the cache (or a load of it is in
    /// flight, `loading`), checked under the same lock: an evict (a DELETE) between the
    /// check and the store would otherwise be undone. Returns whether memory took it.
    fn follow(&self, doc: Arc<Document>, loading: bool, mark: &Mark) -> bool {
        self.change(|held| {
            if !held.marks.holds(&doc.name, mark) {
                return (false, Self::drop_older(&mut held.entries, &doc));
            }
            if !loading && !held.entries.contains_key(&doc.name) {
                return (false, false);
            }
            let (_, changed) = Self::put(&mut held.entries, doc);
            (true, changed)
        })
    }

    fn put(entries: &mut Snapshot, doc: Arc<Document>) -> (Arc<Entry>, bool) {
        if let Some(existing) = entries.get(&doc.name) {
            if existing.doc.version > doc.version {
                return (existing.clone(), false);
            }
        }
        let entry = Arc::new(Entry { doc, stored_at: Instant::now() });
        entries.insert(entry.doc.name.clone(), entry.clone());
        (entry, true)
    }

    /// Drops an entry older than `doc`, which the tiers below may already hold.
    fn drop_older(entries: &mut Snapshot, doc: &Document) -> bool {
        let older = entries.get(&doc.name).is_some_and(|e| e.doc.version < doc.version);
        older && entries.remove(&doc.name).is_some()
    }

    /// Drops `name` from memory; work on it marked before cannot store it back.
    pub fn evict(&self, name: &CacheName) {
        self.change(|held| {
            held.marks.evicted(name);
            ((), held.entries.remove(name).is_some())
        });
    }

    fn get(&self, name: &CacheName) -> Option<Arc<Entry>> {
        self.published.load().get(name).cloned()
    }

    /// Drops every entry and voids every mark: nothing begun before stores after.
    fn clear(&self) {
        self.change(|held| {
            held.entries.clear();
            held.marks.clear();
            ((), true)
        });
    }
}

/// Reads the latest snapshot; cloned into every API worker.
#[derive(Clone)]
pub struct MemoryView(Arc<Shelf>);

impl MemoryView {
    /// The entry for `name`, fresh or not.
    #[inline]
    pub fn get(&self, name: &CacheName) -> Option<Arc<Entry>> {
        self.0.get(name)
    }

    /// The entry for `name` if it is within `ttl`.
    #[inline]
    pub fn fresh(&self, name: &CacheName, ttl: Duration) -> Option<Arc<Entry>> {
        self.0.published.load().get(name).filter(|e| e.is_fresh(ttl)).cloned()
    }

    /// The shelf, for the [`MemoryHandle`] that writes on it.
    pub fn shelf(&self) -> Arc<Shelf> {
        self.0.clone()
    }
}

/// The memory tier's state.
pub struct MemoryTier {
    shelf: Arc<Shelf>,
    loads: HashMap<CacheName, Loading>,
    loader: Loader,
    ttl: Duration,
    reporter: FailureReporter,
    #[allow(dead_code)]
    metrics: Arc<Metrics>,
}

impl MemoryTier {
    /// An empty memory tier whose misses read through `loader`.
    pub fn new(loader: Loader, ttl: Duration, reporter: FailureReporter, metrics: Arc<Metrics>) -> (Self, MemoryView) {
        let shelf = Arc::new(Shelf::new());
        let view = MemoryView(shelf.clone());
        (Self { shelf, loads: HashMap::new(), loader, ttl, reporter, metrics }, view)
    }

    /// A version adopted from elsewhere (a row of Postgres, a rebase), whose adoption
    /// took `mark` before the file tier took it: replaces what memory holds of that
    /// cache, or joins a load in flight (whose older result then cannot replace it); a
    /// cold cache stays cold, read from the file when asked for, and so does one evicted
    /// since `mark`. Returns whether memory took it.
    pub fn follow(&mut self, doc: Arc<Document>, mark: &Mark) -> bool {
        let loading = self.loads.contains_key(&doc.name);
        self.shelf.follow(doc, loading, mark)
    }

    /// Drops `name` from memory.
    pub fn evict(&mut self, name: &CacheName) {
        self.shelf.evict(name);
    }

    /// Forgets everything (after a restart memory is rebuilt lazily from the tiers below).
    pub fn reset(&mut self) {
        self.shelf.clear();
        self.loads.clear();
    }

    /// The entry for `name`, fresh or not.
    fn entry(&self, name: &CacheName) -> Option<Arc<Entry>> {
        self.shelf.get(name)
    }
}

#[cfg(test)]
mod tests;
