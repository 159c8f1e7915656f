//! `If-Match` across instances: with Postgres, a conditional PUT is a compare-and-set on
//! the project's row, so two instances never both accept a write from the same version.
//!
//! The file tier checks the precondition against the local copy and reserves the new
//! version (later local saves go above it); one `tiercache_write_cache` call with the
//! checked version as `expected` decides; only a write Postgres accepted is adopted into
//! the file and memory tiers and acknowledged. The statement is sent once: a failure
//! whose outcome is unknown is answered 503, never retried. With Postgres unreachable,
//! `postgres.single_instance` decides: a local check (this instance is the only one)
//! or 503 with `Retry-After`.

use crate::cache_rules::retention_days_of;
use crate::domain::{CacheName, Checksum, Document, NewDocument, Precondition};
use crate::store::{StoreError, StoreHandle};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// What a conditional PUT needs beyond the save flow.
#[derive(Clone)]
pub struct IfMatch {
    store: StoreHandle,
    /// `postgres.single_instance`: no other instance writes this project, so a local
    /// check is enough while Postgres is unreachable.
    single_instance: bool,
    /// Each cache's `retention_days`, stored in its row with the write (swapped on
    /// SIGHUP, as the retry queue's).
    retention_days: Arc<ArcSwap<HashMap<CacheName, u32>>>,
}

/// How the compare-and-set ended.
#[derive(Debug)]
pub(crate) enum Decided {
    /// Postgres holds `doc`: adopt and acknowledge it.
    Written(Arc<Document>),
    /// The row was at another version: 412 with its ETag (`None`: no row).
    Conflict(Option<String>),
    /// Postgres could not be asked (or did not answer): the local check decides when
    /// this instance is alone, else 503.
    Unreachable(StoreError),
}

impl IfMatch {
    /// The compare-and-set through `store`.
    pub fn new(store: StoreHandle, single_instance: bool, retention_days: HashMap<CacheName, u32>) -> Self {
        Self { store, single_instance, retention_days: Arc::new(ArcSwap::from_pointee(retention_days)) }
    }

    /// SIGHUP: the caches' new `retention_days`, for every clone.
    pub fn retune(&self, retention_days: HashMap<CacheName, u32>) {
        self.retention_days.store(Arc::new(retention_days));
    }

    /// Whether a local check stands in while Postgres is unreachable.
    pub fn single_instance(&self) -> bool {
        self.single_instance
    }

    /// Sends `doc` as `version`, on condition that the row is at `base` (0: no row).
    pub(crate) async fn decide(&self, name: &CacheName, doc: NewDocument, version: u64, base: u64) -> Decided {
        let now = chrono::Utc::now();
        let doc = Arc::new(Document::new(name.clone(), version, doc.checksum, Some(now), None, now, doc.body));
        let retention = retention_days_of(&self.retention_days.load(), name);
        match self.store.write_once(doc.clone(), version, retention, Some(base)).await {
            Ok(outcome) if outcome.written => Decided::Written(doc),
            Ok(outcome) => {
                let current = outcome
                    .row_checksum
                    .as_deref()
                    .and_then(Checksum::parse)
                    .filter(|_| outcome.row_version > 0)
                    .map(|c| c.etag(outcome.row_version));
                Decided::Conflict(current)
            }
            Err(e) => Decided::Unreachable(e),
        }
    }
}

/// Whether `precondition` is a client's `If-Match` (the only saves that go through the
/// compare-and-set; a refresh's base is checked locally).
pub(crate) fn is_if_match(precondition: &Precondition) -> bool {
    matches!(precondition, Precondition::Exists | Precondition::OneOf(_))
}
