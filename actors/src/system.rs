//! What the actors need from the configuration (the daemon builds it in `wiring.rs`),
//! and the refresher's view of the sourced caches, rebuilt on every reload.

use crate::cache_rules::Rules;
use crate::domain::CacheName;
use crate::refresher::sources::{self, SourceConfig};
use crate::refresher::state_store::FileStateStore;
use crate::refresher::{RefreshCache, RefreshPolicy};
use crate::retry_queue::RetryPolicy;
use crate::store::{ConnectConfig, StoreHandle};
use crate::supervisor::RestartPolicy;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The Postgres tier's settings, when it is enabled.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// How to connect.
    pub connect: ConnectConfig,
    /// `[retry]`, as the retry queue runs with it.
    pub retry: RetryPolicy,
    /// `postgres.heads_poll_interval`: how often the project's row heads are read to
    /// follow the other instances; `None`: only on notifications.
    pub heads_poll_interval: Option<Duration>,
    /// `postgres.single_instance`: while Postgres is unreachable, an `If-Match` PUT is
    /// checked here alone (no other instance writes the project) instead of 503.
    pub single_instance: bool,
}

/// One cache with a source.
#[derive(Debug, Clone)]
pub struct SourcedCache {
    /// The cache.
    pub name: CacheName,
    /// `refresh_every`.
    pub every: Option<Duration>,
    /// `rich_refresh_every`.
    pub rich_every: Option<Duration>,
    /// The source.
    pub source: SourceConfig,
}

/// The refresher's settings.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// Caches with a source.
    pub caches: Vec<SourcedCache>,
    /// `[refresh]`.
    pub policy: RefreshPolicy,
    /// `refresh.emergency`.
    pub emergency: bool,
}

/// Builds the refresher's view of the sourced caches (again on every reload).
pub fn refresh_caches(
    data_dir: &std::path::Path,
    caches: &[SourcedCache],
    store: Option<StoreHandle>,
) -> Vec<RefreshCache> {
    let state: Arc<dyn sources::StateStore> = Arc::new(FileStateStore::new(data_dir, store));
    caches
        .iter()
        .map(|c| RefreshCache {
            name: c.name.clone(),
            every: c.every,
            rich_every: c.rich_every,
            source: sources::build(&c.name, c.source.clone(), state.clone()),
            spec: c.source.clone(),
        })
        .collect()
}

/// What the actors need from the configuration.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// `project`.
    pub project: String,
    /// `memory.ttl`.
    pub memory_ttl: Duration,
    /// `[supervisor]`.
    pub restart_policy: RestartPolicy,
    /// Send memory hits through the actor (so the `memory::get` failpoint can fire).
    pub hits_by_message: bool,
    /// `retention_days` per configured cache.
    pub retention_days: HashMap<CacheName, u32>,
    /// `None` when Postgres is disabled.
    pub postgres: Option<PostgresConfig>,
    /// Sources and schedules.
    pub refresh: RefreshConfig,
    /// Each cache's `max_size` and schema: every save is admitted by them, and every
    /// load from file or Postgres is checked against the schema.
    pub rules: Rules,
}
