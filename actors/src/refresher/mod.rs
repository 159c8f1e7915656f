//! The refresher: keeps each cache with a source fresh on its schedule.
//!
//! Each cache is due at `last_fetch + refresh_every` (a rich fetch at
//! `last_rich_fetch + rich_refresh_every`), plus `refresh.jitter`; `last_fetch` lives in
//! the envelope, so restarts do not reset the schedule. One fetch per cache at a time:
//! the schedule, SIGUSR1, `POST /refresh` and emergency refreshes all join the fetch in
//! flight. A failed fetch never overwrites data; it is retried with backoff (and not
//! before a rate-limit window resets). Results go through the normal save flow.

mod actor;
mod budgets;
mod fetch;
mod handle;
mod handlers;
mod messages;
mod push;
mod push_state;
mod schedule;
pub mod sources;
pub mod state_store;
mod view;

pub use handle::RefresherHandle;
pub use messages::{Begin, Quiesce, Reason, Reconfigure, RefreshAll, RefreshNow, StravaPush};
pub use push::{event_type, PushAction, PushEvent, MAX_QUEUED_EVENTS};
pub use schedule::{due_at, Due};
pub use view::{Deauthorized, LastRefresh, Planned, RefreshFailure, RefreshView};

use crate::domain::{CacheName, Document};
use crate::metrics::Metrics;
use crate::retry_queue::backoff::{Backoff, BackoffPolicy};
use crate::save_flow::SaveFlow;
use crate::supervisor::FailureReporter;
use chrono::{DateTime, Utc};
use sources::Source;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

impl Refresher {
    /// Adds `calls` upstream requests of `name` to `tiercache_upstream_calls_total`.
    fn count_calls(&self, name: &CacheName, source: &'static str, reason: messages::Reason, calls: u64) {
        if calls > 0 {
            let label = crate::metrics::CacheSourceReason { cache: name.to_string(), source, reason: reason.as_str() };
            self.metrics.upstream_calls.get_or_create(&label).inc_by(calls);
        }
    }
}

/// Upstream's 304 for the `held` document: `last_fetch` moves, no new version.
async fn not_modified(saver: &SaveFlow, held: Option<&Document>) -> Result<Arc<Document>, messages::FetchFailure> {
    let held =
        held.ok_or_else(|| messages::FetchFailure::Failed("upstream answered 304 but nothing is held".into()))?;
    saver.refetched(held, Utc::now()).await.map_err(|e| messages::FetchFailure::Failed(format!("after a 304: {e}")))
}

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Refresher.label();

/// Why a refresh produced no document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The cache has no source.
    #[error("cache {0} has no source")]
    NoSource(String),
    /// The upstream call failed; the message says why.
    #[error("refresh failed: {0}")]
    Failed(String),
    /// Rate-limited upstream until this time.
    #[error("upstream rate limit; retry after {0}")]
    RateLimited(DateTime<Utc>),
    /// The last refresh failed; the next try is not before this time (upstream is
    /// never hammered, not even by readers of an empty cache).
    #[error("the last refresh failed ({1}); next try after {0}")]
    BackingOff(DateTime<Utc>, String),
    /// The upstream account withdrew the app's authorization: no refresh until the
    /// cache's credentials change; the message says what to do.
    #[error("{0}")]
    Deauthorized(String),
}

/// One cache the refresher looks after.
#[derive(Clone)]
pub struct RefreshCache {
    /// The cache.
    pub name: CacheName,
    /// `refresh_every`; `None`: refreshed only on demand.
    pub every: Option<Duration>,
    /// `rich_refresh_every`.
    pub rich_every: Option<Duration>,
    /// Where data comes from.
    pub source: Arc<dyn Source>,
    /// What `source` was built from: an unchanged source survives a reload (with its
    /// access token and rate budget).
    pub spec: sources::SourceConfig,
}

/// Waits after failed fetches: 1 s, doubling, at most 5 minutes (or the schedule, if
/// shorter). Not a configuration key.
pub const FAILED_FETCH_BACKOFF: BackoffPolicy =
    BackoffPolicy { initial_interval: Duration::from_secs(1), max_interval: Duration::from_secs(300), multiplier: 2.0 };

/// `[refresh]` settings.
#[derive(Debug, Clone)]
pub struct RefreshPolicy {
    /// `refresh.fetch_timeout`.
    pub fetch_timeout: Duration,
    /// `refresh.jitter`: each due time moves by up to this much.
    pub jitter: Duration,
    /// Waits after failed fetches.
    pub backoff: BackoffPolicy,
}

type Waiter = oneshot::Sender<Result<Arc<Document>, RefreshError>>;

/// Per-cache state.
struct CacheState {
    config: RefreshCache,
    last_fetch: Option<DateTime<Utc>>,
    last_rich_fetch: Option<DateTime<Utc>>,
    /// Fixed per cache, so a due time does not move on every tick.
    jitter: Duration,
    in_flight: bool,
    /// A full re-read was asked for and has not started yet.
    want_full: bool,
    waiters: Vec<Waiter>,
    /// After a failure: not before this.
    retry_at: Option<DateTime<Utc>>,
    /// Upstream's rate-limit window: no call of any kind before this.
    blocked_until: Option<DateTime<Utc>>,
    backoff: Backoff,
    failures: u32,
    /// Why the last fetch failed, for readers turned away during the backoff; cleared
    /// by a success or by a newer document saved otherwise (see `clear_failure`).
    last_error: Option<String>,
    /// When it failed.
    last_error_at: Option<DateTime<Utc>>,
    /// Since when another instance has held this cache's leadership without a fresh
    /// result reaching this one (cleared by any fresh result).
    not_leader_since: Option<DateTime<Utc>>,
    /// The leader stayed silent for several periods: this instance refreshes whatever
    /// the lock says, until another instance's fresh result arrives again.
    taking_over: bool,
}

impl CacheState {
    /// Forgets the last failure: the next one starts a new backoff. A rate-limit window
    /// still holds back the next call.
    fn clear_failure(&mut self, backoff: Backoff) {
        self.retry_at = self.blocked_until.filter(|until| *until > Utc::now());
        self.failures = 0;
        self.last_error = None;
        self.last_error_at = None;
        self.backoff = backoff;
    }
}

/// The refresher's state.
pub struct Refresher {
    caches: HashMap<CacheName, CacheState>,
    policy: RefreshPolicy,
    saver: SaveFlow,
    /// Set by [`Begin`]: schedules run only once startup has loaded what exists.
    begun: bool,
    /// Set by [`Quiesce`]: shutting down, no new fetch starts.
    quiesced: bool,
    /// With several instances on one Postgres: only the holder of a cache's advisory
    /// lock runs its scheduled refreshes (docs/scaling.md).
    leader: Option<crate::store::StoreHandle>,
    reporter: FailureReporter,
    metrics: Arc<Metrics>,
    /// Published after every fetch's end and every reload.
    view: RefreshView,
    /// Webhook routing, pending pushed changes, deauthorized caches.
    push: push::PushState,
    /// The rate budget of each upstream application, shared by its sources and kept
    /// across reloads.
    budgets: budgets::Budgets,
}

impl Refresher {
    /// A refresher for `caches`; idle until [`Begin`].
    pub fn new(
        caches: Vec<RefreshCache>,
        policy: RefreshPolicy,
        saver: SaveFlow,
        reporter: FailureReporter,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut refresher = Self {
            caches: HashMap::new(),
            policy,
            saver,
            begun: false,
            quiesced: false,
            leader: None,
            reporter,
            metrics,
            view: RefreshView::default(),
            push: push::PushState::default(),
            budgets: budgets::Budgets::default(),
        };
        refresher.set_caches(caches);
        refresher
    }

    /// The view this refresher publishes its failures to.
    pub fn view(&self) -> RefreshView {
        self.view.clone()
    }

    /// Publishes the caches whose last refresh failed and, once the schedules have
    /// begun (the fetch times are loaded), when each cache is due next.
    fn publish(&self) {
        let failing = self
            .caches
            .iter()
            .filter_map(|(name, s)| {
                let (error, at) = (s.last_error.clone()?, s.last_error_at?);
                Some((name.clone(), RefreshFailure { error, at, failures: s.failures, retry_at: s.retry_at }))
            })
            .collect();
        let planned = self
            .caches
            .iter()
            .filter(|(name, _)| self.begun && !self.push.is_revoked(name))
            .filter_map(|(name, s)| {
                let (at, _) =
                    due_at(s.last_fetch, s.last_rich_fetch, s.config.every, s.config.rich_every, s.jitter, s.retry_at)?;
                // Never fetched: due at once, which is no time to show.
                let at = Some(at).filter(|at| *at > DateTime::<Utc>::MIN_UTC)?;
                Some((name.clone(), Planned { at, after_fetch: s.last_fetch }))
            })
            .collect();
        self.view.publish(failing, planned);
    }

    /// Coordinates scheduled refreshes through `store`'s advisory locks.
    pub fn with_leadership(mut self, store: Option<crate::store::StoreHandle>) -> Self {
        self.leader = store;
        self
    }

    fn set_caches(&mut self, caches: Vec<RefreshCache>) {
        let mut old = std::mem::take(&mut self.caches);
        for config in caches {
            let jitter = schedule::jitter_for(&config.name, self.policy.jitter);
            let state = match old.remove(&config.name) {
                Some(mut s) => {
                    let keep_source = s.config.spec == config.spec;
                    let old_source = s.config.source.clone();
                    s.config = config;
                    if keep_source {
                        s.config.source = old_source;
                    }
                    s.jitter = jitter;
                    s
                }
                None => CacheState {
                    config,
                    last_fetch: None,
                    last_rich_fetch: None,
                    jitter,
                    in_flight: false,
                    want_full: false,
                    waiters: Vec::new(),
                    retry_at: None,
                    blocked_until: None,
                    backoff: Backoff::new(&self.policy.backoff),
                    failures: 0,
                    last_error: None,
                    last_error_at: None,
                    not_leader_since: None,
                    taking_over: false,
                },
            };
            self.caches.insert(state.config.name.clone(), state);
        }
        for (name, state) in old {
            for w in state.waiters {
                let _ = w.send(Err(RefreshError::NoSource(name.to_string())));
            }
        }
        self.budgets.share(self.caches.values().map(|s| &s.config.source));
        self.publish();
    }

    /// Publishes the rate budget `source` saw last (after a 429 too) for `name`.
    fn publish_rate_limits(&self, name: &CacheName, source: &dyn Source) {
        for limit in source.rate_limits() {
            let label = crate::metrics::CacheWindow { cache: name.to_string(), window: limit.window };
            self.metrics.rate_limit_remaining.get_or_create(&label).set(limit.remaining);
        }
    }
}
