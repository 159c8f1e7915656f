//! What the refresher publishes for readers without a message: the caches whose last
//! refresh failed, with why and when. The API's meta and list show it, so an operator
//! sees a failing upstream without reading metrics.

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

/// Failing caches by name; the refresher is the only writer.
#[derive(Clone, Default)]
pub struct RefreshView(Arc<ArcSwap<HashMap<CacheName, RefreshFailure>>>);

impl RefreshView {
    /// The last refresh failure of `name`, while it has not refreshed since.
    pub fn failure(&self, name: &CacheName) -> Option<RefreshFailure> {
        self.0.load().get(name).cloned()
    }

    pub(super) fn publish(&self, failing: HashMap<CacheName, RefreshFailure>) {
        self.0.store(Arc::new(failing));
    }
}
