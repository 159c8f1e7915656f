//! The Prometheus registry and the metric families every part of the daemon records.
//!
//! One `Metrics` is built at startup and shared as `Arc<Metrics>`: the registry is the
//! only process-wide state besides the log subscriber and the failpoints.
//! Label values come from configured cache names and fixed sets, so cardinality is
//! bounded by the configuration.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels `cache` and `tier`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheTier {
    /// Cache name.
    pub cache: String,
    /// Tier that answered.
    pub tier: &'static str,
}

/// Label `tier`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    /// Tier that answered.
    pub tier: &'static str,
}

/// Labels `cache` and `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheResult {
    /// Cache name.
    pub cache: String,
    /// Outcome, e.g. `ok`, `invalid`, `conflict`, `error`.
    pub result: &'static str,
}

/// Labels `cache` and `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheKind {
    /// Cache name.
    pub cache: String,
    /// Error kind, e.g. `no_space`, `read_only`, `permission`, `io`.
    pub kind: &'static str,
}

/// Label `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why, from a fixed set: a malformed request's kind (`method`, `header`,
    /// `too_large`, ...) or a [`AccessRefusal`]'s name.
    pub reason: &'static str,
}

/// Label `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// Outcome.
    pub result: &'static str,
}

/// Label `cache`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// Cache name.
    pub cache: String,
}

/// Labels `cache`, `source` and `reason` (schedule, full, webhook, emergency, manual).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheSourceReason {
    /// Cache name.
    pub cache: String,
    /// Source kind.
    pub source: &'static str,
    /// Why the calls were made.
    pub reason: &'static str,
}

/// Labels `type` (e.g. `activity.create`) and `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeOutcome {
    /// The event's type, from a fixed set (`refresher::event_type`): never the
    /// event's own strings, which anyone can choose.
    pub r#type: &'static str,
    /// What became of it.
    pub outcome: &'static str,
}

/// Labels `cache` and `window`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheWindow {
    /// Cache name.
    pub cache: String,
    /// Rate-limit window, e.g. `15m`, `daily`.
    pub window: &'static str,
}

/// Label `actor`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    /// Actor name, e.g. `memory`, `file`.
    pub actor: &'static str,
}

/// Why the API refused a request before any handler ran (label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessRefusal {
    /// 401: no bearer token, or one that is not valid.
    Unauthenticated,
    /// 403: a valid token whose scope is too narrow (a read token on a write).
    ForbiddenScope,
    /// 403: the client address is not in `api.allow`.
    NotAllowed,
    /// 429: the client is over its rate limit.
    RateLimited,
}

impl AccessRefusal {
    /// Every reason, each with a series at 0 from the start.
    pub const ALL: [AccessRefusal; 4] = [
        AccessRefusal::Unauthenticated,
        AccessRefusal::ForbiddenScope,
        AccessRefusal::NotAllowed,
        AccessRefusal::RateLimited,
    ];

    /// The `reason` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRefusal::Unauthenticated => "unauthenticated",
            AccessRefusal::ForbiddenScope => "forbidden_scope",
            AccessRefusal::NotAllowed => "not_allowed",
            AccessRefusal::RateLimited => "rate_limited",
        }
    }
}

fn lag_histogram() -> Histogram {
    // 10 ms .. ~30 min: due-to-done; refreshes fire within one second of their due time.
    Histogram::new(exponential_buckets(0.01, 3.0, 12))
}

fn read_histogram() -> Histogram {
    // 5 µs .. ~1.3 s: memory hits sit at the bottom, Postgres and refreshes at the top.
    Histogram::new(exponential_buckets(0.000_005, 4.0, 10))
}

/// Every metric family of the daemon.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// `tiercache_reads_total{cache,tier}`.
    pub reads: Family<CacheTier, Counter>,
    /// `tiercache_read_duration_seconds{tier}`.
    pub read_duration: Family<TierLabel, Histogram, fn() -> Histogram>,
    /// `tiercache_reads_not_modified_total{cache}`: reads answered 304 (also in `reads`).
    pub reads_not_modified: Family<CacheLabel, Counter>,
    /// `tiercache_saves_total{cache,result}`.
    pub saves: Family<CacheResult, Counter>,
    /// `tiercache_actor_restarts_total{actor}`.
    pub actor_restarts: Family<ActorLabel, Counter>,
    /// `tiercache_corrupt_files_total{cache}`: envelopes moved aside.
    pub corrupt_files: Family<CacheResult, Counter>,
    /// `tiercache_file_write_errors_total{cache,kind}`: durable writes that failed.
    pub file_write_errors: Family<CacheKind, Counter>,
    /// `tiercache_http_requests_rejected_total{reason}`: malformed requests refused by
    /// the HTTP layer before routing (counted from its log records, see the binary's
    /// telemetry).
    pub http_requests_rejected: Family<ReasonLabel, Counter>,
    /// `tiercache_retry_queue_depth`.
    pub queue_depth: Gauge,
    /// `tiercache_retry_queue_oldest_age_seconds`.
    pub queue_oldest_age: Gauge<f64, AtomicU64>,
    /// `tiercache_dead_letters_total{cache}`.
    pub dead_letters: Family<CacheLabel, Counter>,
    /// `tiercache_postgres_writes_total{result}`.
    pub postgres_writes: Family<ResultLabel, Counter>,
    /// `tiercache_postgres_up`: 1 when the last statement reached Postgres.
    pub postgres_up: Gauge,
    /// `tiercache_notify_failures_total`: hints to the other instances that could not
    /// be sent after a write (the write itself stands).
    pub notify_failures: Counter,
    /// `tiercache_postgres_listening`: 1 while the listener's LISTEN session is up.
    pub postgres_listening: Gauge,
    /// `tiercache_refreshes_total{cache,result}`.
    pub refreshes: Family<CacheResult, Counter>,
    /// `tiercache_refresh_lag_seconds{cache}`: from due to done.
    pub refresh_lag: Family<CacheLabel, Histogram, fn() -> Histogram>,
    /// `tiercache_last_refresh_success_timestamp_seconds{cache}`.
    pub last_refresh_success: Family<CacheLabel, Gauge<f64, AtomicU64>>,
    /// `tiercache_upstream_rate_limit_remaining{cache,window}`.
    pub rate_limit_remaining: Family<CacheWindow, Gauge>,
    /// `tiercache_http_refusals_total{reason}`: 401, 403 and 429 of the API's guard.
    pub http_refusals: Family<ReasonLabel, Counter>,
    /// `tiercache_upstream_calls_total{cache,source,reason}`.
    pub upstream_calls: Family<CacheSourceReason, Counter>,
    /// `tiercache_webhook_events_total{type,outcome}`.
    pub webhook_events: Family<TypeOutcome, Counter>,
    /// `tiercache_webhook_last_event_timestamp_seconds`.
    pub webhook_last_event: Gauge<f64, AtomicU64>,
    /// `tiercache_webhook_handshakes_total{result}`: `answered`, `refused`.
    pub webhook_handshakes: Family<ResultLabel, Counter>,
}

impl Metrics {
    /// Builds the registry with every family registered.
    pub fn new() -> Self {
        let mut metrics = Self::unregistered();
        metrics.register_reads_and_saves();
        metrics.register_postgres();
        metrics.register_refreshes_and_api();
        metrics
    }

    /// Every family, empty, and a registry that knows none of them yet.
    fn unregistered() -> Self {
        Self {
            registry: Registry::with_prefix("tiercache"),
            reads: Family::default(),
            read_duration: Family::new_with_constructor(read_histogram as fn() -> Histogram),
            reads_not_modified: Family::default(),
            saves: Family::default(),
            actor_restarts: Family::default(),
            corrupt_files: Family::default(),
            file_write_errors: Family::default(),
            http_requests_rejected: Family::default(),
            queue_depth: Gauge::default(),
            queue_oldest_age: Gauge::default(),
            dead_letters: Family::default(),
            postgres_writes: Family::default(),
            postgres_up: Gauge::default(),
            notify_failures: Counter::default(),
            postgres_listening: Gauge::default(),
            refreshes: Family::default(),
            refresh_lag: Family::new_with_constructor(lag_histogram as fn() -> Histogram),
            last_refresh_success: Family::default(),
            rate_limit_remaining: Family::default(),
            http_refusals: Family::default(),
            upstream_calls: Family::default(),
            webhook_events: Family::default(),
            webhook_last_event: Gauge::default(),
            webhook_handshakes: Family::default(),
        }
    }

    /// Reads, saves, actor restarts, the file tier and malformed HTTP requests.
    fn register_reads_and_saves(&mut self) {
        let r = &mut self.registry;
        r.register("reads", "Reads answered, by cache and by the tier that answered", self.reads.clone());
        r.register("read_duration_seconds", "Time to answer a read, by tier", self.read_duration.clone());
        r.register(
            "reads_not_modified",
            "Reads answered 304 Not Modified (If-None-Match matched), by cache",
            self.reads_not_modified.clone(),
        );
        r.register("saves", "Saves by cache and result", self.saves.clone());
        r.register("actor_restarts", "Actor restarts by the supervisor", self.actor_restarts.clone());
        r.register("corrupt_files", "Corrupt envelopes found and moved aside", self.corrupt_files.clone());
        r.register(
            "file_write_errors",
            "Durable file writes that failed (their temporary file removed), by cache and error kind",
            self.file_write_errors.clone(),
        );
        r.register(
            "http_requests_rejected",
            "Malformed HTTP requests refused before routing, by reason",
            self.http_requests_rejected.clone(),
        );
    }

    /// The retry queue and Postgres.
    fn register_postgres(&mut self) {
        let r = &mut self.registry;
        r.register("retry_queue_depth", "Saves and deletes not yet in Postgres", self.queue_depth.clone());
        r.register(
            "retry_queue_oldest_age_seconds",
            "Age of the oldest save not yet in Postgres",
            self.queue_oldest_age.clone(),
        );
        r.register("dead_letters", "Saves Postgres rejected for good", self.dead_letters.clone());
        r.register("postgres_writes", "Writes to Postgres by result", self.postgres_writes.clone());
        r.register("postgres_up", "Whether Postgres answered the last statement", self.postgres_up.clone());
        r.register(
            "notify_failures",
            "Hints to the other instances that could not be sent after a write",
            self.notify_failures.clone(),
        );
        r.register(
            "postgres_listening",
            "Whether the LISTEN session for the other instances' writes is up",
            self.postgres_listening.clone(),
        );
    }

    /// Refreshes, upstream calls, the API's refusals and webhooks.
    fn register_refreshes_and_api(&mut self) {
        let r = &mut self.registry;
        r.register("refreshes", "Refreshes by cache and result", self.refreshes.clone());
        r.register("refresh_lag_seconds", "Seconds from a refresh's due time to its end", self.refresh_lag.clone());
        r.register(
            "last_refresh_success_timestamp_seconds",
            "Unix time of the last successful refresh",
            self.last_refresh_success.clone(),
        );
        r.register(
            "upstream_rate_limit_remaining",
            "Requests left in the upstream's rate-limit window",
            self.rate_limit_remaining.clone(),
        );
        r.register(
            "http_refusals",
            "API requests refused before a handler ran (401, 403, 429), by reason",
            self.http_refusals.clone(),
        );
        // At 0 from the start, so that rate() and increase() see the first refusal.
        for reason in AccessRefusal::ALL {
            let _ = self.http_refusals.get_or_create(&ReasonLabel { reason: reason.as_str() });
        }
        r.register(
            "upstream_calls",
            "HTTP calls to upstream APIs by cache, source kind and reason",
            self.upstream_calls.clone(),
        );
        r.register("webhook_events", "Webhook events received, by type and outcome", self.webhook_events.clone());
        r.register(
            "webhook_handshakes",
            "Strava subscription handshakes, answered or refused (wrong mode or verify token)",
            self.webhook_handshakes.clone(),
        );
        r.register(
            "webhook_last_event_timestamp_seconds",
            "Unix time of the last webhook event accepted",
            self.webhook_last_event.clone(),
        );
    }

    /// Counts one refusal of the API's guard.
    pub fn refused(&self, reason: AccessRefusal) {
        self.http_refusals.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_start_at_zero_and_count_by_reason() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        for reason in ["unauthenticated", "forbidden_scope", "not_allowed", "rate_limited"] {
            let line = format!("tiercache_http_refusals_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&line), "no {line:?} in:\n{text}");
        }
        metrics.refused(AccessRefusal::RateLimited);
        metrics.refused(AccessRefusal::RateLimited);
        let text = metrics.encode();
        assert!(text.contains("tiercache_http_refusals_total{reason=\"rate_limited\"} 2"), "{text}");
        assert!(text.contains("tiercache_http_refusals_total{reason=\"not_allowed\"} 0"), "{text}");
    }
}
