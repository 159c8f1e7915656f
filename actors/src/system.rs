//! Starting the actors under supervision, in dependency order.

use crate::files::{FileHandle, FileTier, FileTierConfig};
use crate::memory::{Loader, MemoryHandle, MemoryTier};
use crate::metrics::Metrics;
use crate::supervisor::{RestartPolicy, Supervisor};
use crate::tiers::Tiers;
use actix::{Arbiter, Supervisor as ActixSupervisor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
pub fn start(config: &SystemConfig, metrics: Arc<Metrics>) -> Running {
    let (supervisor, reporter) = Supervisor::new(config.restart_policy, metrics.clone());

    // 1. The file tier, on a thread of its own: fsync blocks, and must not stall the
    //    memory tier or the API.
    let file_arbiter = Arbiter::new();
    let file_config = FileTierConfig { data_dir: config.data_dir.clone(), project: config.project.clone() };
    let (r, m) = (reporter.clone(), metrics.clone());
    let files = FileHandle::new(ActixSupervisor::start_in_arbiter(&file_arbiter.handle(), move |_| {
        FileTier::new(file_config, r, m)
    }));

    // 2. The memory tier, reading through the file tier on misses.
    let (memory_tier, view) = MemoryTier::new(Loader::new(files.clone()), config.memory_ttl, reporter, metrics);
    let memory = MemoryHandle::new(ActixSupervisor::start(move |_| memory_tier));

    Running {
        tiers: Tiers::new(memory, files, view, config.memory_ttl, config.hits_by_message),
        supervisor,
        _file_arbiter: file_arbiter,
    }
}
