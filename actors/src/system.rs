//! Starting the actors under supervision, in dependency order.

use crate::cache_rules::{LiveRules, Rules};
use crate::domain::CacheName;
use crate::files::{FileHandle, FileTier, FileTierConfig};
use crate::memory::{Loader, MemoryHandle, MemoryTier};
use crate::metrics::Metrics;
use crate::refresher::sources::{self, SourceConfig};
use crate::refresher::state_store::FileStateStore;
use crate::refresher::{RefreshCache, RefreshPolicy, Refresher, RefresherHandle};
use crate::retry_queue::{BackoffPolicy, Peers, RetryConfig, RetryQueue, RetryQueueHandle};
use crate::save_flow::SaveFlow;
use crate::store::{ConnectConfig, Store, StoreConfig, StoreHandle};
use crate::supervisor::{RestartPolicy, Supervisor};
use crate::tiers::{ReadPolicy, TierHandles, Tiers};
use actix::{Arbiter, Supervisor as ActixSupervisor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The Postgres tier's settings, when it is enabled.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// How to connect.
    pub connect: ConnectConfig,
    /// `[retry]` intervals.
    pub backoff: BackoffPolicy,
    /// `retry.max_attempts`.
    pub max_attempts: u32,
    /// `retry.enabled`.
    pub retry_enabled: bool,
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

/// The running actors.
pub struct Running {
    /// The flows the API calls.
    pub tiers: Tiers,
    /// Applies the restart policy; run it and treat its return as fatal.
    pub supervisor: Supervisor,
    /// Keeps the file tier's thread alive.
    _file_arbiter: Arbiter,
    /// Tells the listener that the startup sync is over.
    pub startup_synced: StartupGate,
}

/// Opened once the startup sync with Postgres is over, whatever its outcome. Until then
/// the listener, already LISTENing, holds back its own reconciliation, which would
/// otherwise fetch the same rows a second time while the sync fetches them.
pub struct StartupGate(tokio::sync::watch::Sender<bool>);

impl StartupGate {
    /// Lets the listener reconcile.
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

/// Starts every actor. Must run inside an actix `System`.
///
/// # Errors
/// A message when the Postgres settings cannot make a connection pool (bad URL, TLS).
pub fn start(config: &SystemConfig, metrics: Arc<Metrics>) -> Result<Running, String> {
    let (supervisor, reporter) = Supervisor::new(config.restart_policy, metrics.clone());

    // 1. The file tier, on a thread of its own: fsync blocks, and must not stall the
    //    memory tier or the API.
    let file_arbiter = Arbiter::new();
    let file_config = FileTierConfig { data_dir: config.data_dir.clone(), project: config.project.clone() };
    let (r, m) = (reporter.clone(), metrics.clone());
    let files = FileHandle::new(ActixSupervisor::start_in_arbiter(&file_arbiter.handle(), move |_| {
        FileTier::new(file_config, r, m)
    }));

    // 2. The Postgres store, when enabled (connections are made lazily).
    let store = match &config.postgres {
        Some(pg) => {
            let store = Store::new(
                StoreConfig { connect: pg.connect.clone(), project: config.project.clone() },
                reporter.clone(),
            )?;
            Some(StoreHandle::new(ActixSupervisor::start(move |_| store)))
        }
        None => None,
    };

    // 3. The memory tier, reading through the file tier and Postgres on misses.
    let rules = LiveRules::new(config.rules.clone());
    let loader = Loader::new(files.clone(), store.clone(), rules.clone());
    let (memory_tier, view) = MemoryTier::new(loader, config.memory_ttl, reporter.clone(), metrics.clone());
    let memory = MemoryHandle::new(ActixSupervisor::start(move |_| memory_tier));

    // 4. The retry queue, which rebuilds itself from the files at start.
    let queue = match (&config.postgres, &store) {
        (Some(pg), Some(store)) => {
            let retry_config = RetryConfig {
                data_dir: config.data_dir.clone(),
                backoff: pg.backoff,
                max_attempts: pg.max_attempts,
                enabled: pg.retry_enabled,
                retention_days: config.retention_days.clone(),
            };
            let peers = Peers { files: files.clone(), memory: memory.clone(), store: store.clone() };
            let (queue, queue_view) = RetryQueue::new(retry_config, peers, reporter.clone(), metrics.clone());
            Some(RetryQueueHandle::new(ActixSupervisor::start(move |_| queue), queue_view))
        }
        _ => None,
    };

    // 5. The refresher, idle until startup is done (`Begin`).
    let refresher = {
        let saver = SaveFlow::new(files.clone(), memory.clone(), queue.clone(), rules.clone());
        let caches = refresh_caches(&config.data_dir, &config.refresh.caches, store.clone());
        // Leadership needs a session; behind a transaction pooler there is none.
        let leadership = store.clone().filter(|_| config.postgres.as_ref().is_some_and(|p| p.connect.statement_cache));
        let refresher = Refresher::new(caches, config.refresh.policy.clone(), saver, reporter.clone(), metrics.clone())
            .with_leadership(leadership);
        let view = refresher.view();
        RefresherHandle::new(ActixSupervisor::start(move |_| refresher), view)
    };

    // 6. Cross-instance invalidation: LISTEN on the project's channel.
    let (startup_synced, startup_synced_rx) = tokio::sync::watch::channel(false);
    if let (Some(pg), Some(store), Some(queue)) = (&config.postgres, &store, &queue) {
        let peers = crate::listener::ListenerPeers {
            store: store.clone(),
            files: files.clone(),
            memory: memory.clone(),
            queue: queue.clone(),
            refresher: Some(refresher.clone()),
            startup_synced: startup_synced_rx,
        };
        crate::listener::spawn(peers, pg.connect.clone(), config.project.clone(), reporter.clone());
    }

    let handles = TierHandles { memory, files, view, store, queue, refresher: Some(refresher), rules };
    let policy = ReadPolicy {
        ttl: config.memory_ttl,
        hits_by_message: config.hits_by_message,
        emergency: config.refresh.emergency,
    };
    Ok(Running {
        tiers: Tiers::new(handles, policy),
        supervisor,
        _file_arbiter: file_arbiter,
        startup_synced: StartupGate(startup_synced),
    })
}
