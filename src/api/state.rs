//! What every API worker shares: the tier handles, the per-cache policies (swapped on
//! SIGHUP), readiness and the metrics.

use super::security::Security;
use super::tls::CertResolver;
use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiercache_actors::domain::CacheName;
use tiercache_actors::memory::ServedFrom;
use tiercache_actors::metrics::{CacheLabel, CacheTier, Metrics, TierLabel};
use tiercache_actors::save_flow::SaveFlow;
use tiercache_actors::supervisor::health::Mailboxes;
use tiercache_actors::tiers::Tiers;

/// The API's view of one configured cache.
#[derive(Debug, Clone)]
pub(crate) struct CachePolicy {
    /// `max_size`.
    pub max_size: u64,
    /// `refresh_every`: data older than this is served as `stale`.
    pub refresh_every: Option<Duration>,
    /// Whether a source is configured (a refresh is possible).
    pub has_source: bool,
    /// The source's kind (`strava`, `justgiving`, `http`, `command`), for meta.
    pub source: Option<&'static str>,
    /// `refresh.max_stale` (global, copied here so a read loads the policy once):
    /// data older than this is refused with 503.
    pub max_stale: Option<Duration>,
}

/// The reloadable part of the API's configuration.
#[derive(Debug, Clone)]
pub(crate) struct ApiPolicy {
    /// Configured caches; any other name is 404.
    pub caches: HashMap<CacheName, CachePolicy>,
    /// `api.max_body`.
    pub max_body: u64,
    /// `[webhooks]` Strava; `None`: the webhook routes answer 404.
    pub strava_webhook: Option<super::webhooks::StravaWebhook>,
    /// `GET /v1/openapi.json` for this configuration, rendered once.
    pub openapi: actix_web::web::Bytes,
}

/// The read metrics of each configured cache, looked up once (at start and on
/// reload) so that a read increments a counter without building a label set.
pub(crate) struct ReadMetrics {
    /// `tiercache_reads_total{cache,tier}` by cache, indexed by `ServedFrom::index`.
    pub reads: HashMap<CacheName, [Counter; 5]>,
    /// `tiercache_reads_not_modified_total{cache}` by cache.
    pub not_modified: HashMap<CacheName, Counter>,
    /// `tiercache_read_duration_seconds{tier}`, indexed by `ServedFrom::index`.
    pub duration: [Histogram; 5],
}

impl ReadMetrics {
    /// The handles for `caches`.
    pub(crate) fn new<'a>(metrics: &Metrics, caches: impl Iterator<Item = &'a CacheName>) -> Self {
        let caches: Vec<&CacheName> = caches.collect();
        let not_modified = caches
            .iter()
            .map(|name| {
                let label = CacheLabel { cache: name.to_string() };
                ((*name).clone(), metrics.reads_not_modified.get_or_create(&label).clone())
            })
            .collect();
        let reads = caches
            .into_iter()
            .map(|name| {
                let counter = |tier: ServedFrom| {
                    metrics.reads.get_or_create(&CacheTier { cache: name.to_string(), tier: tier.as_str() }).clone()
                };
                (name.clone(), ServedFrom::ALL.map(counter))
            })
            .collect();
        let duration =
            ServedFrom::ALL.map(|tier| metrics.read_duration.get_or_create(&TierLabel { tier: tier.as_str() }).clone());
        Self { reads, not_modified, duration }
    }
}

/// Shared by every worker.
pub(crate) struct AppState {
    /// The read flow and the queries the API answers from.
    pub tiers: Tiers,
    /// The runtime's one save flow, for PUT.
    pub saver: SaveFlow,
    /// The actors' mailboxes (the status snapshot says which are open).
    pub mailboxes: Mailboxes,
    /// Swapped whole on SIGHUP.
    pub policy: ArcSwap<ApiPolicy>,
    /// Tokens, allow-list and rate limiter; swapped whole on SIGHUP.
    pub security: ArcSwap<Security>,
    /// The certificate of the HTTPS listeners (`None`: plain HTTP); SIGHUP replaces
    /// the certificate inside it.
    pub tls: Option<Arc<CertResolver>>,
    /// Flipped on once startup is done, off when shutting down.
    pub ready: AtomicBool,
    /// The registry.
    pub metrics: Arc<Metrics>,
    /// Counters and histograms of the read path (swapped on reload).
    pub read_metrics: ArcSwap<ReadMetrics>,
    /// The health loop's latest verdict (`/healthz`).
    pub liveness: Arc<crate::liveness::Liveness>,
    /// The webhook route's intake: its rate cap, the subscription it checks, its
    /// accounting of anonymous traffic.
    pub webhooks: super::webhook_intake::WebhookIntake,
}

impl AppState {
    /// Whether `/readyz` answers 200.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Flips readiness.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}
