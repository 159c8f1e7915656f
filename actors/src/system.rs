//! Starting the actors under supervision, in dependency order.

use crate::domain::CacheName;
use crate::files::{FileHandle, FileTier, FileTierConfig};
use crate::memory::{Loader, MemoryHandle, MemoryTier};
use crate::metrics::Metrics;
use crate::retry_queue::{BackoffPolicy, Peers, RetryConfig, RetryQueue, RetryQueueHandle};
use crate::store::{ConnectConfig, Store, StoreConfig, StoreHandle};
use crate::supervisor::{RestartPolicy, Supervisor};
use crate::tiers::Tiers;
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
}

/// The running actors.
pub struct Running {
    /// The flows the API calls.
    pub tiers: Tiers,
    /// Applies the restart policy; run it and treat its return as fatal.
    pub supervisor: Supervisor,
    /// Keeps the file tier's thread alive.
    _file_arbiter: Arbiter,
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
    let loader = Loader::new(files.clone(), store.clone());
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
            let (queue, queue_view) = RetryQueue::new(retry_config, peers, reporter, metrics);
            Some(RetryQueueHandle::new(ActixSupervisor::start(move |_| queue), queue_view))
        }
        _ => None,
    };

    let tiers = Tiers::new(memory, files, view, config.memory_ttl, config.hits_by_message, store, queue);
    Ok(Running { tiers, supervisor, _file_arbiter: file_arbiter })
}
