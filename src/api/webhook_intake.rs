//! The webhook route's own bounded intake and its quiet accounting of anonymous traffic.
//!
//! The route is public (Strava must reach it) and takes no token, so what arrives
//! there is anonymous. Decided (docs/security.md, "The webhook route"):
//! - at most [`EVENTS_PER_SECOND`] events a second (bursts of [`EVENTS_BURST`]) go on
//!   to the refresher, which takes at most `MAX_QUEUED_EVENTS` waiting; beyond that an
//!   event is still answered 200 (Strava only needs the acknowledgement) and dropped,
//!   counted. Events of another subscription are dropped before the cap, so a flood of
//!   them cannot crowd out Strava's own deliveries;
//! - each event's handler first gives way to the other requests its worker serves, so
//!   a client pipelining thousands of events on one connection cannot hold a worker;
//! - refusals and drops are client input: counted, logged at `DEBUG`, and summed up in
//!   at most one `INFO` line a minute, never `WARN`.

use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use tiercache_actors::store::StoreHandle;
use tiercache_actors::strava_subscription::SubscriptionWatch;

/// Events per second handed on to the refresher.
pub(crate) const EVENTS_PER_SECOND: u32 = 50;
/// ... in bursts of at most this many.
pub(crate) const EVENTS_BURST: u32 = 200;

/// At most one summary line per this many seconds.
const SUMMARY_EVERY_SECS: i64 = 60;

/// Why anonymous traffic was refused or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anonymous {
    /// A handshake with a wrong mode or verify token (403).
    Handshake,
    /// A body that is not an event, or too large (400, 413).
    Invalid,
    /// An event of another subscription (200, dropped).
    OtherSubscription,
    /// Over the intake's cap or queue (200, dropped).
    Dropped,
}

impl Anonymous {
    const ALL: [Anonymous; 4] =
        [Anonymous::Handshake, Anonymous::Invalid, Anonymous::OtherSubscription, Anonymous::Dropped];

    fn index(self) -> usize {
        self as usize
    }
}

/// Shared by the API's workers.
pub(crate) struct WebhookIntake {
    limiter: DefaultDirectRateLimiter,
    /// The subscription id events are checked against.
    pub subscription: Arc<SubscriptionWatch>,
    /// Postgres, when enabled: where the subscription id is kept beside the data directory.
    pub store: Option<StoreHandle>,
    counts: [AtomicU64; 4],
    /// When the last summary line was written (seconds since the epoch).
    summarized_at: AtomicI64,
}

impl WebhookIntake {
    /// The intake of a daemon whose `data_dir` is `data_dir`.
    pub(crate) fn new(data_dir: &std::path::Path, store: Option<StoreHandle>) -> Self {
        let rate = NonZeroU32::new(EVENTS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(EVENTS_BURST).unwrap_or(rate);
        Self {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            subscription: SubscriptionWatch::new(data_dir),
            store,
            counts: Default::default(),
            summarized_at: AtomicI64::new(0),
        }
    }

    /// Whether one more event may go on to the refresher this second.
    pub(crate) fn admit(&self) -> bool {
        self.limiter.check().is_ok()
    }

    /// Accounts for refused or dropped anonymous traffic: a `DEBUG` line, and at most
    /// one `INFO` line a minute summing up what was refused since the last one.
    pub(crate) fn note(&self, why: Anonymous, detail: &str) {
        self.counts[why.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = ?why, detail, "anonymous webhook request refused or dropped");
        let now = chrono::Utc::now().timestamp();
        let last = self.summarized_at.load(Ordering::Acquire);
        if now - last < SUMMARY_EVERY_SECS
            || self.summarized_at.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        let [handshakes, invalid, other_subscription, dropped] =
            Anonymous::ALL.map(|a| self.counts[a.index()].swap(0, Ordering::Relaxed));
        tracing::info!(
            handshakes_refused = handshakes,
            invalid,
            other_subscription,
            dropped,
            "webhook route: anonymous requests refused or dropped since the last summary (counted in \
             tiercache_webhook_events_total and tiercache_webhook_handshakes_total)"
        );
    }
}
