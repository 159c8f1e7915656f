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

/// The upstream account behind a cache withdrew the app's authorization (a Strava
/// athlete deauthorized it, as Strava confirmed): nothing is served or refreshed until
/// the cache's credentials change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deauthorized {
    /// When it was recorded, if known.
    pub at: Option<DateTime<Utc>>,
    /// What upstream answered.
    pub why: String,
}

impl Deauthorized {
    /// What an operator reads in meta, `status` and `POST .../refresh`: the cause and
    /// the next step.
    pub fn explain(&self, name: &CacheName) -> String {
        let at = self.at.map(|t| format!(" at {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        format!(
            "cache {name} was deauthorized{}: the Strava athlete withdrew this app's access ({}); its data \
             was purged and it is not refreshed. To serve it again, have the athlete authorize the app \
             again, put the new refresh token in caches.source.refresh_token (or refresh_token_file) and \
             reload (SIGHUP)",
            at.unwrap_or_default(),
            self.why
        )
    }
}

/// Failing caches, last refreshes and deauthorized caches by name; the refresher is
/// the only writer.
#[derive(Clone, Default)]
pub struct RefreshView {
    failing: Arc<ArcSwap<HashMap<CacheName, RefreshFailure>>>,
    last: Arc<ArcSwap<HashMap<CacheName, LastRefresh>>>,
    deauthorized: Arc<ArcSwap<HashMap<CacheName, Deauthorized>>>,
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

    /// Whether (and why) `name` was deauthorized upstream.
    pub fn deauthorized(&self, name: &CacheName) -> Option<Deauthorized> {
        self.deauthorized.load().get(name).cloned()
    }

    pub(super) fn publish_deauthorized(&self, deauthorized: HashMap<CacheName, Deauthorized>) {
        self.deauthorized.store(Arc::new(deauthorized));
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
