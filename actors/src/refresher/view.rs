//! What the refresher publishes for readers without a message: the caches whose last
//! refresh failed, with why and when, and how each cache was last refreshed. The API's
//! meta and list show it, so an operator sees a failing upstream without reading
//! metrics.

use crate::domain::CacheName;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// The last refresh of a cache failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    /// Why.
    pub error: String,
    /// When it failed.
    pub at: DateTime<Utc>,
    /// Failures in a row.
    pub failures: u32,
    /// The next try, when one is planned.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The last successful refresh of a cache (since this process started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRefresh {
    /// Why it ran: `schedule`, `full`, `webhook`, `emergency`, `manual`.
    pub reason: &'static str,
    /// What it did: `saved` (a new version), `not_modified` (upstream's 304),
    /// `by_peer` (another instance fetched it).
    pub result: &'static str,
    /// When it ended.
    pub at: DateTime<Utc>,
}

/// Failing caches and last refreshes by name; the refresher is the only writer.
#[derive(Clone, Default)]
pub struct RefreshView {
    failing: Arc<ArcSwap<HashMap<CacheName, RefreshFailure>>>,
    last: Arc<ArcSwap<HashMap<CacheName, LastRefresh>>>,
}

impl RefreshView {
    /// The last refresh failure of `name`, while it has not refreshed since.
    pub fn failure(&self, name: &CacheName) -> Option<RefreshFailure> {
        self.failing.load().get(name).cloned()
    }

    /// How `name` was last refreshed, if it was since this process started.
    pub fn last(&self, name: &CacheName) -> Option<LastRefresh> {
        self.last.load().get(name).cloned()
    }

    pub(super) fn publish(&self, failing: HashMap<CacheName, RefreshFailure>) {
        self.failing.store(Arc::new(failing));
    }

    pub(super) fn record(&self, name: &CacheName, last: LastRefresh) {
        self.last.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.clone(), last.clone());
            map
        });
    }
}
