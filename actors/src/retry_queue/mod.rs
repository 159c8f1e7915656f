//! The retry queue: write-behind to Postgres that loses nothing.
//!
//! The durable record of a pending save is the envelope itself: a save is on disk
//! before it is acknowledged, and `data_dir/queue/synced.json` records the version
//! Postgres last confirmed per cache. A cache whose envelope is newer than its synced
//! version is pending; a tombstone is a pending delete. So a `kill -9` at any moment
//! loses nothing: at start the queue is rebuilt from the files, and a save sent twice is
//! harmless (the version guard). The queue coalesces by construction: each attempt
//! sends the newest envelope of its cache.
//!
//! Each cache has its own backoff, so one bad cache never blocks the others; transient
//! errors are retried for ever, and a save Postgres rejects for good goes to
//! `data_dir/dead-letter/` after `max_attempts`.

mod actor;
pub mod backoff;
mod handle;
mod handlers;
mod messages;

pub use self::backoff::BackoffPolicy;
pub use handle::RetryQueueHandle;
pub use messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};

use self::backoff::Backoff;
use crate::domain::CacheName;
use crate::files::FileHandle;
use crate::memory::MemoryHandle;
use crate::metrics::Metrics;
use crate::store::StoreHandle;
use crate::supervisor::FailureReporter;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Retry.label();

/// What must reach Postgres for one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The newest envelope (at least this version).
    Write(u64),
    /// The row must go (the tombstone is on disk).
    Delete,
}

/// One pending cache.
pub struct Pending {
    /// What to send.
    pub op: Op,
    /// Since when this cache has been out of sync.
    pub since: DateTime<Utc>,
    /// When the first save arrived while an attempt was in flight (that attempt may
    /// not carry it).
    newer_since: Option<DateTime<Utc>>,
    /// Attempts that Postgres rejected for good, in a row.
    pub rejections: u32,
    /// When to try next.
    pub next_at: Instant,
    backoff: Backoff,
}

/// The published queue status, read by the API without a message.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// Pending caches and since when.
    pub pending: BTreeMap<CacheName, DateTime<Utc>>,
    /// Whether the background retry is on.
    pub enabled: bool,
    /// Why nothing can reach Postgres until an operator acts (today: the project is not
    /// registered), as the last attempt found; `None` otherwise. A shutdown does not
    /// wait for a drain that cannot succeed.
    pub blocked: Option<String>,
}

impl QueueSnapshot {
    /// Age in seconds of the oldest pending save.
    pub fn oldest_age(&self) -> Option<f64> {
        self.pending.values().min().map(|t| (Utc::now() - *t).num_milliseconds().max(0) as f64 / 1000.0)
    }
}

/// The queue's status in one value: what `GET /v1/caches` (`retry_queue`) and the
/// SIGUSR2 status snapshot show.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStatus {
    /// Whether the background retry is on.
    pub enabled: bool,
    /// Pending caches.
    pub depth: usize,
    /// Age in seconds of the oldest pending save.
    pub oldest_age_seconds: Option<f64>,
    /// The pending caches, by name.
    pub pending: Vec<CacheName>,
}

/// Reads the latest published status.
#[derive(Clone)]
pub struct QueueView(Arc<ArcSwap<QueueSnapshot>>);

impl QueueView {
    /// The current status.
    pub fn snapshot(&self) -> Arc<QueueSnapshot> {
        self.0.load_full()
    }
}

/// What the actor needs to start.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// `data_dir`, for `queue/synced.json` and `dead-letter/`.
    pub data_dir: PathBuf,
    /// `[retry]` intervals.
    pub backoff: BackoffPolicy,
    /// `retry.max_attempts` for saves Postgres rejects for good.
    pub max_attempts: u32,
    /// `retry.enabled` (`BACKGROUND_RETRY`): false tries once and leaves failures on disk.
    pub enabled: bool,
    /// `retention_days` per configured cache, stored in each row.
    pub retention_days: HashMap<CacheName, u32>,
}

/// The peers the queue talks to.
#[derive(Clone)]
pub struct Peers {
    /// Reads the envelope to send; adopts rebased versions.
    pub files: FileHandle,
    /// Learns rebased versions.
    pub memory: MemoryHandle,
    /// Where everything goes.
    pub store: StoreHandle,
}

/// The retry queue's state.
pub struct RetryQueue {
    config: RetryConfig,
    peers: Peers,
    pending: BTreeMap<CacheName, Pending>,
    synced: HashMap<CacheName, u64>,
    in_flight: HashSet<CacheName>,
    /// Shutdown is draining: waits between failures are kept short.
    draining: bool,
    /// See [`QueueSnapshot::blocked`].
    blocked: Option<String>,
    /// Since a save failed to reach Postgres: how many have reached it since. When the
    /// queue is empty again, one line says so ([`RetryQueue::note_recovery`]).
    recovering: Option<usize>,
    published: Arc<ArcSwap<QueueSnapshot>>,
    reporter: FailureReporter,
    metrics: Arc<Metrics>,
}

impl RetryQueue {
    /// A queue over `config.data_dir`; its pending set is rebuilt from disk at start.
    pub fn new(
        config: RetryConfig,
        peers: Peers,
        reporter: FailureReporter,
        metrics: Arc<Metrics>,
    ) -> (Self, QueueView) {
        let published =
            Arc::new(ArcSwap::from_pointee(QueueSnapshot { enabled: config.enabled, ..Default::default() }));
        let view = QueueView(published.clone());
        let queue = Self {
            config,
            peers,
            pending: BTreeMap::new(),
            synced: HashMap::new(),
            in_flight: HashSet::new(),
            draining: false,
            blocked: None,
            recovering: None,
            published,
            reporter,
            metrics,
        };
        (queue, view)
    }

    fn synced_path(&self) -> PathBuf {
        self.config.data_dir.join("queue").join("synced.json")
    }

    fn load_synced(&mut self) {
        let path = self.synced_path();
        self.synced = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashMap<String, u64>>(&b).ok())
            .map(|m| m.into_iter().filter_map(|(k, v)| Some((CacheName::parse(&k).ok()?, v))).collect())
            .unwrap_or_default();
    }

    /// Records what Postgres confirmed, right after it did. Not on the acknowledgement
    /// path, but kept exact: a save wrongly taken for unsent would be written again
    /// above a newer row made meanwhile by another instance. (Writing it on every
    /// confirmation costs two fsyncs on this thread; see docs/performance.md.)
    fn save_synced(&self) {
        let map: BTreeMap<&str, u64> = self.synced.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let path = self.synced_path();
        let result = std::fs::create_dir_all(path.parent().expect("queue dir"))
            .and_then(|()| crate::files::durable::write_atomic(&path, &serde_json::to_vec(&map).expect("json")));
        if let Err(e) = result {
            tracing::warn!(actor = ACTOR, error = %e, "could not record synced versions; they will be sent again");
        }
    }

    /// Adds (or widens) a pending operation for `name`, due now.
    pub fn enqueue(&mut self, name: CacheName, op: Op) {
        let now = Instant::now();
        match self.pending.get_mut(&name) {
            Some(p) => {
                p.op = match (p.op, op) {
                    (Op::Write(a), Op::Write(b)) => Op::Write(a.max(b)),
                    (_, new) => new,
                };
                p.rejections = 0;
                p.next_at = now;
                if self.in_flight.contains(&name) && p.newer_since.is_none() {
                    p.newer_since = Some(Utc::now());
                }
            }
            None => {
                self.pending.insert(
                    name,
                    Pending {
                        op,
                        since: Utc::now(),
                        newer_since: None,
                        rejections: 0,
                        next_at: now,
                        backoff: Backoff::new(&self.config.backoff),
                    },
                );
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let snapshot = QueueSnapshot {
            pending: self.pending.iter().map(|(k, p)| (k.clone(), p.since)).collect(),
            enabled: self.config.enabled,
            blocked: self.blocked.clone(),
        };
        self.metrics.queue_depth.set(snapshot.pending.len() as i64);
        self.metrics.queue_oldest_age.set(snapshot.oldest_age().unwrap_or(0.0));
        self.published.store(Arc::new(snapshot));
    }

    /// Caches due for an attempt now (or all, when draining for shutdown).
    fn due(&self, all: bool) -> Vec<(CacheName, Op)> {
        let now = Instant::now();
        self.pending
            .iter()
            .filter(|(name, p)| !self.in_flight.contains(*name) && (all || p.next_at <= now))
            .map(|(name, p)| (name.clone(), p.op))
            .collect()
    }

    /// Number of pending caches.
    pub fn depth(&self) -> usize {
        self.pending.len()
    }
}
