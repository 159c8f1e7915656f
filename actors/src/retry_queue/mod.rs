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
//! errors and outages (Postgres unreachable or refusing this role, see
//! `store::classify`) are retried for ever, and only a save Postgres rejects for the
//! data itself goes to `data_dir/dead-letter/` after `max_attempts`
//! (`queue/dead-lettered.json` records its version, so a restart does not send it
//! again). An outage is logged when it starts and when it ends (`outage`).

mod actor;
pub mod backoff;
mod handle;
mod handlers;
mod messages;
mod outage;
mod policy;

pub use self::backoff::BackoffPolicy;
pub use handle::RetryQueueHandle;
pub use messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};
pub use outage::OutageView;
pub use policy::RetryPolicy;

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

/// What one cache's pending operation becomes when another save or delete of it is
/// enqueued: two writes coalesce to the higher version (each attempt sends the newest
/// envelope anyway); otherwise the newer operation wins (a delete over a write, a write
/// over a delete: the tombstone or the envelope on disk is what is true now).
pub fn merge(pending: Op, new: Op) -> Op {
    match (pending, new) {
        (Op::Write(a), Op::Write(b)) => Op::Write(a.max(b)),
        (_, new) => new,
    }
}

impl Pending {
    /// A cache newly out of sync at `at`, due at `now`.
    fn new(op: Op, policy: &RetryPolicy, now: Instant, at: DateTime<Utc>) -> Self {
        Self { op, since: at, newer_since: None, rejections: 0, next_at: now, backoff: policy.schedule() }
    }

    /// Another save or delete of this cache arrived at `at`: the operation is
    /// [`merge`]d, due at once, with no rejections counted against it (it is a new
    /// save), and its backoff kept. When an attempt is `in_flight`, that attempt may
    /// not carry it: the first such arrival is remembered, so the age of what is left
    /// after the attempt starts then. `since` never moves here.
    fn widen(&mut self, op: Op, in_flight: bool, now: Instant, at: DateTime<Utc>) {
        self.op = merge(self.op, op);
        self.rejections = 0;
        self.next_at = now;
        if in_flight && self.newer_since.is_none() {
            self.newer_since = Some(at);
        }
    }
}

/// How an attempt ended, as far as the settle rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Postgres holds the envelope sent at `sent`; disk is at `local_now` (higher when
    /// Postgres rebased the save above its row).
    Synced {
        /// The version sent.
        sent: u64,
        /// The version on disk now.
        local_now: u64,
    },
    /// The row is gone.
    Deleted,
    /// There was nothing on disk to send.
    Nothing,
    /// Postgres (or the file tier) failed in a way that retrying can fix.
    Transient,
    /// Postgres rejected the statement for good.
    Rejected,
}

/// What settling an attempt does to the cache's pending entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The entry is done: remove it.
    Done,
    /// A newer save or delete arrived during the attempt: it stays pending, its age
    /// starting when that arrived.
    Newer,
    /// Leave the entry as it is (there is none, or it is not the attempt's).
    Keep,
    /// Background retry is off: drop the entry; the save stays on disk and is sent at
    /// the next start.
    LeaveOnDisk,
    /// Try again after the backoff; rejections start again from zero.
    RetryTransient,
    /// Try again after the backoff, one more rejection counted.
    RetryRejected,
    /// Rejected `max_attempts` times in a row: move it to the dead letter.
    DeadLetter,
}

/// The settle rule: what an attempt of `attempted` that `ended` so does to the cache's
/// pending entry, given that entry's operation and rejections so far (`None` when
/// nothing is pending), whether background retry is `enabled` and `max_attempts`.
pub fn settle_rule(
    pending: Option<(Op, u32)>,
    attempted: Op,
    ended: Ended,
    enabled: bool,
    max_attempts: u32,
) -> Settlement {
    let failed = matches!(ended, Ended::Transient | Ended::Rejected);
    if failed && !enabled {
        return Settlement::LeaveOnDisk;
    }
    let Some((op, rejections)) = pending else { return Settlement::Keep };
    match ended {
        Ended::Synced { sent, local_now } => match op {
            Op::Write(v) if v <= local_now.max(sent) => Settlement::Done,
            _ => Settlement::Newer,
        },
        Ended::Deleted if op == Op::Delete => Settlement::Done,
        Ended::Nothing if op == attempted => Settlement::Done,
        Ended::Deleted | Ended::Nothing => Settlement::Keep,
        Ended::Transient => Settlement::RetryTransient,
        Ended::Rejected if rejections.saturating_add(1) >= max_attempts && op == attempted => Settlement::DeadLetter,
        Ended::Rejected => Settlement::RetryRejected,
    }
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
    /// The version of each cache Postgres acknowledged last (meta's `postgres_synced`
    /// is true only for exactly that version).
    pub synced: HashMap<CacheName, u64>,
    /// Saves cannot reach Postgres: why, what to do, since when.
    pub outage: Option<OutageView>,
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
    /// `[retry]`.
    pub policy: RetryPolicy,
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
    /// What Postgres acknowledged, per cache (`queue/synced.json`).
    synced: HashMap<CacheName, u64>,
    /// The versions moved to the dead letter (`queue/dead-lettered.json`): not sent
    /// again after a restart, and never taken for acknowledged.
    dead_lettered: HashMap<CacheName, u64>,
    /// Whether saves can reach Postgres (the gauge, the published status, the log).
    outage: outage::Outage,
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
            Arc::new(ArcSwap::from_pointee(QueueSnapshot { enabled: config.policy.enabled, ..Default::default() }));
        let view = QueueView(published.clone());
        let queue = Self {
            config,
            peers,
            pending: BTreeMap::new(),
            synced: HashMap::new(),
            dead_lettered: HashMap::new(),
            outage: outage::Outage::default(),
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

    fn dead_lettered_path(&self) -> PathBuf {
        self.config.data_dir.join("queue").join("dead-lettered.json")
    }

    fn load_synced(&mut self) {
        self.synced = read_versions(&self.synced_path());
        self.dead_lettered = read_versions(&self.dead_lettered_path());
    }

    /// The version up to which nothing of `name` needs sending: what Postgres
    /// acknowledged, or what went to the dead letter.
    fn settled_version(&self, name: &CacheName) -> u64 {
        let synced = self.synced.get(name).copied().unwrap_or(0);
        synced.max(self.dead_lettered.get(name).copied().unwrap_or(0))
    }

    /// Records what Postgres confirmed, right after it did. Not on the acknowledgement
    /// path, but kept exact: a save wrongly taken for unsent would be written again
    /// above a newer row made meanwhile by another instance. (Writing it on every
    /// confirmation costs two fsyncs on this thread; see docs/performance.md.)
    fn save_synced(&self) {
        if let Err(e) = write_versions(&self.synced_path(), &self.synced) {
            tracing::warn!(actor = ACTOR, error = %e, "could not record synced versions; they will be sent again");
        }
    }

    fn save_dead_lettered(&self) {
        if let Err(e) = write_versions(&self.dead_lettered_path(), &self.dead_lettered) {
            tracing::warn!(actor = ACTOR, error = %e, "could not record dead-lettered versions; they will be sent again");
        }
    }

    /// Adds (or widens, see [`Pending::widen`]) a pending operation for `name`, due now.
    pub fn enqueue(&mut self, name: CacheName, op: Op) {
        let (now, at) = (Instant::now(), Utc::now());
        let in_flight = self.in_flight.contains(&name);
        match self.pending.get_mut(&name) {
            Some(p) => p.widen(op, in_flight, now, at),
            None => {
                self.pending.insert(name, Pending::new(op, &self.config.policy, now, at));
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let snapshot = QueueSnapshot {
            pending: self.pending.iter().map(|(k, p)| (k.clone(), p.since)).collect(),
            enabled: self.config.policy.enabled,
            blocked: self.blocked.clone(),
            synced: self.synced.clone(),
            outage: self.outage.view().cloned(),
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

/// A `{"cache": version}` record under `queue/`; empty when missing or unreadable.
fn read_versions(path: &std::path::Path) -> HashMap<CacheName, u64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<HashMap<String, u64>>(&b).ok())
        .map(|m| m.into_iter().filter_map(|(k, v)| Some((CacheName::parse(&k).ok()?, v))).collect())
        .unwrap_or_default()
}

/// Writes a `{"cache": version}` record durably.
fn write_versions(path: &std::path::Path, versions: &HashMap<CacheName, u64>) -> std::io::Result<()> {
    let map: BTreeMap<&str, u64> = versions.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    std::fs::create_dir_all(path.parent().expect("queue dir"))
        .and_then(|()| crate::files::durable::write_atomic(path, &serde_json::to_vec(&map).expect("json")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> RetryPolicy {
        let backoff = BackoffPolicy {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(60),
            multiplier: 2.0,
        };
        RetryPolicy { backoff, ..RetryPolicy::default() }
    }

    fn entry(op: Op) -> Pending {
        let at = Utc::now() - chrono::Duration::seconds(60);
        Pending::new(op, &policy(), Instant::now() + Duration::from_secs(30), at)
    }

    #[test]
    fn enqueueing_writes_coalesces_to_the_higher_version() {
        assert_eq!(merge(Op::Write(3), Op::Write(5)), Op::Write(5));
        assert_eq!(merge(Op::Write(5), Op::Write(3)), Op::Write(5));
    }

    #[test]
    fn enqueueing_a_delete_over_a_write_or_a_write_over_a_delete_takes_the_newer() {
        assert_eq!(merge(Op::Write(5), Op::Delete), Op::Delete);
        assert_eq!(merge(Op::Delete, Op::Write(1)), Op::Write(1));
        assert_eq!(merge(Op::Delete, Op::Delete), Op::Delete);
    }

    #[test]
    fn enqueueing_over_a_pending_entry_makes_it_due_now_with_no_rejections_and_keeps_its_age() {
        let mut p = entry(Op::Write(2));
        p.rejections = 2;
        let since = p.since;
        let (now, at) = (Instant::now(), Utc::now());
        p.widen(Op::Write(4), false, now, at);
        assert_eq!((p.op, p.rejections, p.next_at, p.since, p.newer_since), (Op::Write(4), 0, now, since, None));
    }

    #[test]
    fn enqueueing_during_an_attempt_remembers_the_first_arrival_only() {
        let mut p = entry(Op::Write(2));
        let first = Utc::now();
        p.widen(Op::Write(3), true, Instant::now(), first);
        p.widen(Op::Write(4), true, Instant::now(), first + chrono::Duration::seconds(5));
        assert_eq!(p.newer_since, Some(first));
    }

    #[test]
    fn a_write_that_reached_postgres_settles_its_entry() {
        let ok = Ended::Synced { sent: 3, local_now: 3 };
        assert_eq!(settle_rule(Some((Op::Write(3), 0)), Op::Write(3), ok, true, 5), Settlement::Done);
        // Rebased above a newer row: disk is now higher than what was asked.
        let rebased = Ended::Synced { sent: 3, local_now: 9 };
        assert_eq!(settle_rule(Some((Op::Write(3), 0)), Op::Write(3), rebased, true, 5), Settlement::Done);
        assert_eq!(settle_rule(None, Op::Write(3), ok, true, 5), Settlement::Keep);
    }

    #[test]
    fn a_newer_version_queued_during_the_attempt_stays_pending() {
        let ok = Ended::Synced { sent: 3, local_now: 3 };
        assert_eq!(settle_rule(Some((Op::Write(4), 0)), Op::Write(3), ok, true, 5), Settlement::Newer);
        assert_eq!(settle_rule(Some((Op::Delete, 0)), Op::Write(3), ok, true, 5), Settlement::Newer);
        // A save after a delete that was in flight: the delete settles nothing.
        assert_eq!(settle_rule(Some((Op::Write(1), 0)), Op::Delete, Ended::Deleted, true, 5), Settlement::Keep);
        assert_eq!(settle_rule(Some((Op::Delete, 0)), Op::Delete, Ended::Deleted, true, 5), Settlement::Done);
    }

    #[test]
    fn nothing_to_send_settles_only_the_attempted_operation() {
        assert_eq!(settle_rule(Some((Op::Write(3), 0)), Op::Write(3), Ended::Nothing, true, 5), Settlement::Done);
        assert_eq!(settle_rule(Some((Op::Write(4), 0)), Op::Write(3), Ended::Nothing, true, 5), Settlement::Keep);
    }

    #[test]
    fn a_transient_error_retries_for_ever() {
        for rejections in [0, 4, 100] {
            let got = settle_rule(Some((Op::Write(3), rejections)), Op::Write(3), Ended::Transient, true, 5);
            assert_eq!(got, Settlement::RetryTransient);
        }
    }

    #[test]
    fn a_permanent_error_dead_letters_at_max_attempts_of_the_same_operation() {
        let rejected = |p, attempted| settle_rule(Some(p), attempted, Ended::Rejected, true, 3);
        assert_eq!(rejected((Op::Write(3), 0), Op::Write(3)), Settlement::RetryRejected);
        assert_eq!(rejected((Op::Write(3), 1), Op::Write(3)), Settlement::RetryRejected);
        assert_eq!(rejected((Op::Write(3), 2), Op::Write(3)), Settlement::DeadLetter);
        // A newer save arrived meanwhile: it gets its own attempts.
        assert_eq!(rejected((Op::Write(4), 2), Op::Write(3)), Settlement::RetryRejected);
        assert_eq!(settle_rule(None, Op::Write(3), Ended::Rejected, true, 3), Settlement::Keep);
    }

    #[test]
    fn with_background_retry_off_a_failure_leaves_the_save_on_disk() {
        for ended in [Ended::Transient, Ended::Rejected] {
            assert_eq!(settle_rule(Some((Op::Write(3), 0)), Op::Write(3), ended, false, 5), Settlement::LeaveOnDisk);
            assert_eq!(settle_rule(None, Op::Write(3), ended, false, 5), Settlement::LeaveOnDisk);
        }
        let ok = Ended::Synced { sent: 3, local_now: 3 };
        assert_eq!(settle_rule(Some((Op::Write(3), 0)), Op::Write(3), ok, false, 5), Settlement::Done);
    }
}
