//! Messages the store actor accepts.

use super::StoreError;
use crate::domain::{CacheName, Document};
use actix::Message;
use std::sync::Arc;

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The row now holds the document at its own version.
    Written,
    /// The row now holds the document at this higher version (the row had an equal or
    /// higher version with other data); the other tiers should adopt it.
    Rebased {
        /// The version Postgres holds.
        version: u64,
    },
    /// An earlier attempt wrote the document (its answer was lost) and another write
    /// replaced it since: nothing written now, the newer row stands and is adopted.
    Superseded {
        /// The version Postgres holds.
        version: u64,
    },
    /// Another instance's save with later content (see [`Document::content_time`]) held
    /// the row at this save's version or below: that save was written again above this
    /// one's version, so that every copy converges on it; the other tiers adopt it.
    Yielded {
        /// The winning document at the version Postgres now holds.
        doc: Arc<Document>,
    },
}

/// Read one cache's row.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Arc<Document>>, StoreError>")]
pub struct ReadRow {
    /// The cache.
    pub name: CacheName,
}

/// Read name, version and ETag of every row of the project (no data).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<super::RowHead>, StoreError>")]
pub struct ReadHeads;

/// Write an acknowledged save (see [`super::Store::write`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteOutcome, StoreError>")]
pub struct WriteRow {
    /// The document.
    pub doc: Arc<Document>,
    /// The cache's `retention_days`, stored in its row.
    pub retention_days: u32,
    /// The row version this instance last knew (`None`: nothing known).
    pub known: Option<u64>,
}

/// One call of the write function: the version guard (`expected` `None`) or a
/// compare-and-set on the row's version (see [`super::Store::write_conditional`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<super::CasOutcome, StoreError>")]
pub struct WriteConditional {
    /// The document.
    pub doc: Arc<Document>,
    /// The version to write it at.
    pub version: u64,
    /// The cache's `retention_days`, stored in its row.
    pub retention_days: u32,
    /// The row's version the write is conditional on (0: no row); `None`: the guard.
    pub expected: Option<u64>,
}

/// The upstream was checked and had nothing new for this document (an HTTP 304): the
/// row's `last_fetch` moves, so the other instances see the leader's check.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct RecordCheck {
    /// The document held, with its new `last_fetch`.
    pub doc: Arc<Document>,
}

/// Whether the audit records a delete of `name` at `version` or above.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct DeleteAudited {
    /// The cache.
    pub name: CacheName,
    /// The local copy's version.
    pub version: u64,
}

/// Delete one cache's row, if at `version` or below.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteRow {
    /// The cache.
    pub name: CacheName,
    /// The newest version the deleting instance knew: a newer row stays.
    pub version: u64,
}

/// Store the configured caches' `retention_days` in their rows; answer the rows of
/// caches no longer configured.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<super::UnconfiguredRow>, StoreError>")]
pub struct RetentionRows {
    /// The configured caches and their `retention_days`.
    pub configured: Vec<(CacheName, u32)>,
}

/// Purge rows of caches no longer configured, past their retention; answers them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<super::UnconfiguredRow>, StoreError>")]
pub struct PurgeUnconfigured {
    /// The configured caches, never touched.
    pub keep: Vec<CacheName>,
}

/// Check that Postgres answers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Ping;

/// Take or confirm refresh leadership of one cache (advisory lock).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct TryLead {
    /// The cache.
    pub name: CacheName,
}

/// Save a source's state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveState {
    /// `kind:cache`.
    pub key: String,
    /// The state.
    pub state: serde_json::Value,
}

/// Delete a source's state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteState {
    /// `kind:cache`.
    pub key: String,
}

/// Load a source's state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<serde_json::Value>, StoreError>")]
pub struct LoadState {
    /// `kind:cache`.
    pub key: String,
}

/// New connection settings (a rotated password).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, super::PoolError>")]
pub struct Reconnect(pub super::ConnectConfig);

/// Internal: a statement in flight panicked (already reported); restart the actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(super) struct Restart;
