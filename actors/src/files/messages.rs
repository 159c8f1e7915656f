//! Messages the file-tier actor accepts.

use super::{FileLookup, FileTierError, OnDisk};
use crate::domain::{CacheName, Document, NewDocument, Precondition};
use crate::supervisor::ActorPanicked;
use actix::Message;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Read and verify the envelope of `name` (absent when missing or corrupt).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<FileLookup, FileTierError>")]
pub struct ReadFile {
    /// The cache.
    pub name: CacheName,
}

/// Write a new version of `name` durably.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Arc<Document>, FileTierError>")]
pub struct WriteFile {
    /// The cache.
    pub name: CacheName,
    /// The validated, canonical document.
    pub doc: NewDocument,
    /// `If-Match`.
    pub precondition: Precondition,
    /// Newest version known elsewhere; the new version goes above it.
    pub floor: u64,
}

/// Check a precondition and reserve the version a write would get (see
/// [`super::FileTier::reserve`]): `(version, base)`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(u64, u64), FileTierError>")]
pub struct ReserveVersion {
    /// The cache.
    pub name: CacheName,
    /// `If-Match`.
    pub precondition: Precondition,
}

/// Store a version made elsewhere (Postgres) unless disk already has it or newer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, FileTierError>")]
pub struct AdoptFile {
    /// The document to store as is.
    pub doc: Arc<Document>,
    /// Only if disk still holds this version (a rebase of exactly that save).
    pub expected: Option<u64>,
}

/// [`AdoptFile`] for several caches (each with its `expected`), their writes batched: the
/// startup sync's rows. One answer per document, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Result<bool, FileTierError>>, FileTierError>")]
pub struct AdoptFiles {
    /// The documents to store as they are, each cache at most once, each with the
    /// version disk must still hold (as [`AdoptFile`]'s `expected`).
    pub docs: Vec<(Arc<Document>, Option<u64>)>,
}

/// Rewrite the envelope of the version disk holds with new fetch times (an upstream
/// 304: the data is current, no new version). Only if disk still holds exactly that
/// version with that checksum; `true` if written.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, FileTierError>")]
pub struct TouchFile {
    /// The same version and data, with the new `last_fetch`.
    pub doc: Arc<Document>,
}

/// Delete the envelope of `name`, leaving a tombstone; `true` if there was one.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, FileTierError>")]
pub struct RemoveFile {
    /// The cache.
    pub name: CacheName,
    /// Only if disk still holds this version, live (a delete seen elsewhere must not
    /// take a save made here since); `None`: whatever it holds.
    pub expected: Option<u64>,
}

/// The index of what is on disk.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<HashMap<CacheName, OnDisk>, ActorPanicked>")]
pub struct ListFiles;

/// Drop the tombstone of `name`: Postgres has the delete.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, FileTierError>")]
pub struct ForgetTombstone {
    /// The cache.
    pub name: CacheName,
}

/// Retention: remove the envelope of `name` if saved before `cutoff`, with no
/// tombstone; answers the purged envelope's save time.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<DateTime<Utc>>, FileTierError>")]
pub struct PurgeFile {
    /// The cache, no longer configured.
    pub name: CacheName,
    /// Only an envelope saved before this goes.
    pub cutoff: DateTime<Utc>,
}

/// Whether the file of `name` was found corrupt (moved aside) and nothing was written
/// since, so that a reader can be told why there is no data.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, FileTierError>")]
pub struct WasQuarantined {
    /// The cache.
    pub name: CacheName,
}
