//! Messages the retry queue accepts.

use super::RetryPolicy;
use crate::domain::CacheName;
use actix::Message;
use std::collections::{BTreeSet, HashMap};

/// A save of `name` at `version` is durable on disk and must reach Postgres.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EnqueueWrite {
    /// The cache.
    pub name: CacheName,
    /// The version saved.
    pub version: u64,
}

/// `name` was deleted (its tombstone is on disk); the row must go.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EnqueueDelete {
    /// The cache.
    pub name: CacheName,
}

/// Postgres is known to hold `version` of `name` (the startup comparison).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MarkSynced {
    /// The cache.
    pub name: CacheName,
    /// The version Postgres holds.
    pub version: u64,
}

/// Rebuild the pending set from the file tier's index and the synced record.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Shutdown: try every pending cache now, with short waits between failures.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Which caches have something not yet in Postgres (a save or a delete). Answered after
/// the queue has rebuilt itself from disk, so the startup sync can tell an
/// acknowledged save that Postgres never got from a file Postgres has moved past.
#[derive(Debug, Clone, Message)]
#[rtype(result = "BTreeSet<CacheName>")]
pub struct PendingCaches;

/// SIGHUP: new `[retry]` settings and `retention_days`. Pending caches restart their
/// backoff under the new intervals; rows written from now on carry the new retention.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Retune {
    /// `[retry]`.
    pub policy: RetryPolicy,
    /// `retention_days` per configured cache.
    pub retention_days: HashMap<CacheName, u32>,
}
