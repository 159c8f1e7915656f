//! Marks: how work begun before an evict (a DELETE) is kept from storing into memory
//! after it.

use crate::domain::CacheName;
use std::collections::HashMap;
use std::sync::Arc;

/// Taken before a tier below memory is read or written for a cache (a load, a save, an
/// adoption): the document that work brings back may be stored only if the cache was
/// not evicted since (a DELETE between the two would otherwise be undone in memory,
/// served until the TTL ends).
#[derive(Debug, Clone)]
pub struct Mark(Arc<()>);

impl Mark {
    /// Whether both were taken between the same two evicts of one cache (or restarts).
    pub(super) fn same(&self, other: &Mark) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The current mark of each cache; an evict drops it, so every mark taken before no
/// longer matches. A mark nobody holds any more is pruned, so the map stays as small as
/// the work in flight, whatever names come and go.
#[derive(Default)]
pub(super) struct Marks {
    current: HashMap<CacheName, Arc<()>>,
    /// Size after the last prune: the next one waits for the map to double.
    kept: usize,
}

impl Marks {
    /// The cache's current mark (a new one after an evict).
    pub(super) fn take(&mut self, name: &CacheName) -> Mark {
        if self.current.len() > 2 * self.kept + 64 {
            self.current.retain(|_, token| Arc::strong_count(token) > 1);
            self.kept = self.current.len();
        }
        if let Some(token) = self.current.get(name) {
            return Mark(token.clone());
        }
        Mark(self.current.entry(name.clone()).or_default().clone())
    }

    /// Whether `mark` is still the cache's current one: no evict since it was taken.
    pub(super) fn holds(&self, name: &CacheName, mark: &Mark) -> bool {
        self.current.get(name).is_some_and(|token| Arc::ptr_eq(token, &mark.0))
    }

    /// Voids the cache's marks: the cache was evicted.
    pub(super) fn evicted(&mut self, name: &CacheName) {
        self.current.remove(name);
    }

    /// Voids every mark (the memory actor restarted, or memory was cleared).
    pub(super) fn clear(&mut self) {
        self.current.clear();
    }

    /// How many caches have a current mark (tests check the pruning).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.current.len()
    }
}
