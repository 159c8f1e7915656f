//! The running purge's handle: starts the loop and feeds it the configuration in force.

use super::{remember, run, Configured, RetentionPeers};
use crate::domain::CacheName;
use crate::supervisor::{spawn_guarded, ActorId, FailureReporter};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Feeds the running purge the configured caches; dropping it ends the loop.
pub struct RetentionHandle {
    tx: watch::Sender<Configured>,
    /// The running `data_dir` (a new one takes a restart).
    data_dir: PathBuf,
}

impl RetentionHandle {
    /// Starts the purge: a pass now, after every reconfiguration, and one every `every`.
    /// A pass that panics is reported to the supervisor and the next one runs as
    /// planned. Must run inside an actix `System`.
    pub fn start(
        peers: RetentionPeers,
        data_dir: PathBuf,
        configured: HashMap<CacheName, u32>,
        every: Duration,
        reporter: FailureReporter,
    ) -> Self {
        let (tx, rx) = watch::channel(Arc::new(configured));
        spawn_guarded(ActorId::Retention, reporter.clone(), run(peers, data_dir.clone(), rx, every, reporter));
        Self { tx, data_dir }
    }

    /// A reload: records the new retentions and runs a pass on them (caches added or
    /// removed).
    pub fn reconfigure(&self, configured: HashMap<CacheName, u32>) {
        remember(&self.data_dir, &configured);
        self.tx.send_replace(Arc::new(configured));
    }
}
