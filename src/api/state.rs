//! What every API worker shares: the tier handles, the per-cache policies (swapped on
//! SIGHUP), readiness and the metrics.

use super::security::Security;
use super::tls::CertResolver;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiercache_actors::domain::CacheName;
use tiercache_actors::metrics::Metrics;
use tiercache_actors::tiers::Tiers;

/// The API's view of one configured cache.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// `max_size`.
    pub max_size: u64,
    /// `refresh_every`: data older than this is served as `stale`.
    pub refresh_every: Option<Duration>,
    /// Whether a source is configured (a refresh is possible).
    pub has_source: bool,
}

/// The reloadable part of the API's configuration.
#[derive(Debug, Clone)]
pub struct ApiPolicy {
    /// Configured caches; any other name is 404.
    pub caches: HashMap<CacheName, CachePolicy>,
    /// `api.max_body`.
    pub max_body: u64,
    /// Whether Postgres is enabled (for `postgres_synced`).
    pub postgres_enabled: bool,
    /// `refresh.max_stale`: data older than this is refused with 503.
    pub max_stale: Option<Duration>,
}

/// Shared by every worker.
pub struct AppState {
    /// The flows.
    pub tiers: Tiers,
    /// Swapped whole on SIGHUP.
    pub policy: ArcSwap<ApiPolicy>,
    /// Tokens, allow-list, rate limiter and schemas; swapped whole on SIGHUP.
    pub security: ArcSwap<Security>,
    /// The certificate of the HTTPS listeners (`None`: plain HTTP); SIGHUP replaces
    /// the certificate inside it.
    pub tls: Option<Arc<CertResolver>>,
    /// Flipped on once startup is done, off when shutting down.
    pub ready: AtomicBool,
    /// The registry.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Flips readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}
