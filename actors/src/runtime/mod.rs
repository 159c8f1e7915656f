//! The runtime's lifecycle in one place: boot the actors under supervision, the startup
//! step (file index, pooler check, timed Postgres sync), go live, quiesce, drain, and
//! the supervisor's verdict. The daemon and the offline commands both go through it.
//!
//! ```text
//! Runtime::boot ─▶ startup() / startup_offline() ─▶ go_live() ─▶ … ─▶ quiesce() ─▶ drain()
//! ```

mod boot;
mod drain;
mod error;
mod reconfigure;
mod sync;

pub use drain::DrainProgress;
pub use error::BootError;
pub use sync::{Startup, SyncOutcome};

use crate::domain::CacheName;
use crate::metrics::Metrics;
use crate::retention::{RetentionHandle, RetentionPeers};
use crate::retry_queue::RetryQueueHandle;
use crate::save_flow::SaveFlow;
use crate::store::StoreHandle;
use crate::supervisor::health::Mailboxes;
use crate::supervisor::{spawn_guarded, ActorId, FailureReporter, GaveUp, Supervisor};
use crate::system::{PostgresConfig, SystemConfig};
use crate::tiers::Tiers;
use actix::Arbiter;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running actors, their supervisor and what the lifecycle steps need.
pub struct Runtime {
    /// The read flow and the API's queries.
    tiers: Tiers,
    /// The one save flow: every save, adoption and purge of the runtime goes through it.
    saver: SaveFlow,
    /// The running actors, for the lifecycle steps.
    actors: boot::Actors,
    supervisor: JoinHandle<Option<GaveUp>>,
    startup_synced: StartupGate,
    postgres: Option<PostgresConfig>,
    /// `data_dir` and the configured caches' `retention_days`, for the purge.
    data_dir: PathBuf,
    retention_days: HashMap<CacheName, u32>,
    /// The retention purge, once live.
    retention: Option<RetentionHandle>,
    /// Keeps the file tier's thread alive.
    _file_arbiter: Arbiter,
    /// Started by the daemon's [`Runtime::startup`], never by the offline commands.
    listener: std::sync::Mutex<Option<boot::PendingListener>>,
    /// Where the runtime's own tasks (retention, the background sync, a reconnection)
    /// report their panics.
    reporter: FailureReporter,
}

/// Opened once the startup sync with Postgres is over, whatever its outcome. Until then
/// the listener, already LISTENing, holds back its own reconciliation, which would
/// otherwise fetch the same rows a second time while the sync fetches them.
struct StartupGate(watch::Sender<bool>);

impl StartupGate {
    fn open(&self) {
        self.0.send_replace(true);
    }
}

/// Why the supervisor stopped: it gave up on an actor, or it stopped without a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The restart limit was exceeded.
    GaveUp(GaveUp),
    /// The supervisor stopped otherwise (every reporter gone, or its task failed).
    Stopped,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GaveUp(g) => g.fmt(f),
            Self::Stopped => f.write_str("the supervisor stopped"),
        }
    }
}

impl Runtime {
    /// Starts every actor under supervision, in dependency order, and the supervisor
    /// that applies the restart policy. Must run inside an actix `System`.
    ///
    /// # Errors
    /// [`BootError::Postgres`] when the Postgres settings cannot make a connection pool.
    pub fn boot(config: &SystemConfig, metrics: Arc<Metrics>) -> Result<Self, BootError> {
        let (supervisor, reporter) = Supervisor::new(config.restart_policy, metrics.clone());
        let started = boot::start_actors(&boot::Ctx { config, reporter: reporter.clone(), metrics })?;
        Ok(Self {
            tiers: started.tiers,
            saver: started.saver,
            actors: started.actors,
            supervisor: supervisor.start(),
            startup_synced: StartupGate(started.startup_synced),
            postgres: config.postgres.clone(),
            data_dir: config.data_dir.clone(),
            retention_days: config.retention_days.clone(),
            retention: None,
            _file_arbiter: started.file_arbiter,
            listener: std::sync::Mutex::new(started.listener),
            reporter,
        })
    }

    /// Starts `work`, a task of the daemon's own (the HTTP server, the health loop), under
    /// supervision: a panic in it is logged and counted as `actor`'s (see
    /// [`spawn_guarded`]). Must run inside an actix `System`.
    pub fn spawn(&self, actor: ActorId, work: impl std::future::Future<Output = ()> + 'static) {
        spawn_guarded(actor, self.reporter.clone(), work);
    }

    /// The flows across the actors, as the API and the commands use them.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The save flow the runtime's writers share (the API's PUT and DELETE, the
    /// commands, the refresher, the listener, the startup sync, retention).
    pub fn saver(&self) -> &SaveFlow {
        &self.saver
    }

    /// Postgres, when enabled: the webhook intake keeps the Strava subscription id there.
    pub fn postgres_store(&self) -> Option<StoreHandle> {
        self.actors.store.clone()
    }

    /// The running actors' mailboxes, for the health probe and the status snapshot.
    pub fn mailboxes(&self) -> Mailboxes {
        self.actors.mailboxes()
    }

    /// What the startup sync works with, when Postgres is enabled.
    fn sync_peers(&self) -> Option<sync::SyncPeers> {
        let store = self.actors.store.clone()?;
        let queue = self.actors.queue.clone()?;
        Some(sync::SyncPeers { store, queue, saver: self.saver.clone() })
    }

    /// How long the startup sync may take: `postgres.connect_timeout` plus
    /// `postgres.statement_timeout`.
    fn sync_limit(pg: &PostgresConfig) -> Duration {
        pg.connect.options.connect_timeout + pg.connect.options.statement_timeout
    }

    /// The daemon's startup step: waits for the file tier's index, refuses a transaction
    /// pooler, then loads the project's rows and repairs the files before serving. When
    /// Postgres does not answer, the daemon starts from the files and the sync keeps
    /// being retried in the background.
    ///
    /// # Errors
    /// [`BootError::FileTier`] or [`BootError::TransactionPooler`].
    pub async fn startup(&self) -> Result<Startup, BootError> {
        // LISTEN before the sync, so that no write made meanwhile is missed.
        let listener = self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(listener) = listener {
            listener.start();
        }
        let caches_on_disk = sync::index(&self.actors.files).await?.len();
        let (Some(pg), Some(peers)) = (&self.postgres, self.sync_peers()) else {
            return Ok(Startup { caches_on_disk, sync: SyncOutcome::Disabled });
        };
        let limit = Self::sync_limit(pg);
        sync::refuse_transaction_pooler(&pg.connect, limit).await?;
        let outcome = sync::timed_sync(&peers, limit).await;
        sync::report_and_resync(&outcome, peers, &pg.retry.backoff, &self.reporter);
        Ok(Startup { caches_on_disk, sync: outcome })
    }

    /// An offline command's startup step: the file tier's index, then one timed sync
    /// with Postgres; on failure the command works from the files alone. No LISTEN
    /// connection: a command that ends in seconds has no copies for other instances'
    /// writes to invalidate.
    ///
    /// # Errors
    /// [`BootError::FileTier`].
    pub async fn startup_offline(&self) -> Result<Startup, BootError> {
        let caches_on_disk = sync::index(&self.actors.files).await?.len();
        let (Some(pg), Some(peers)) = (&self.postgres, self.sync_peers()) else {
            return Ok(Startup { caches_on_disk, sync: SyncOutcome::Disabled });
        };
        let outcome = sync::timed_sync(&peers, Self::sync_limit(pg)).await;
        sync::report_offline(&outcome);
        Ok(Startup { caches_on_disk, sync: outcome })
    }

    /// After readiness: the retention purge's first pass (then one every
    /// `retention_every`, and after every reconfiguration), then lets the listener
    /// reconcile and begins the refresher's schedules (overdue caches refresh now;
    /// readiness never waits for an upstream API). Must run inside an actix `System`.
    pub fn go_live(&mut self, retention_every: Duration) {
        let days = std::mem::take(&mut self.retention_days);
        let peers = RetentionPeers { store: self.actors.store.clone(), saver: self.saver.clone() };
        self.retention =
            Some(RetentionHandle::start(peers, self.data_dir.clone(), days, retention_every, self.reporter.clone()));
        self.startup_synced.open();
        self.actors.refresher.begin();
    }

    /// A reload: emergency refreshes for every reader, and every actor takes from
    /// `config` what it can apply live (see [`reconfigure::apply`]).
    pub fn reconfigure(&self, config: &SystemConfig) {
        self.tiers.set_emergency(config.refresh.emergency);
        reconfigure::apply(&self.actors, self.retention.as_ref(), config, &self.reporter);
    }

    /// At shutdown: the refresher starts no more fetches.
    pub fn quiesce(&self) {
        self.actors.refresher.quiesce();
    }

    /// Saves acknowledged but not yet in Postgres (0 without Postgres).
    pub fn pending_saves(&self) -> usize {
        self.actors.queue.as_ref().map_or(0, RetryQueueHandle::pending_count)
    }

    /// Whether saves are written behind to Postgres (a retry queue exists).
    pub fn writes_behind(&self) -> bool {
        self.actors.queue.is_some()
    }

    /// SIGUSR1: starts a refresh of every cache with a source; how many started.
    pub async fn refresh_all(&self) -> usize {
        self.actors.refresher.refresh_all().await
    }

    /// Sends what the retry queue holds until it is empty or `deadline` passes; what is
    /// left stays on disk for the next start. While saves keep leaving the queue,
    /// `progress` is told, at most once a second, how much longer to wait.
    pub async fn drain(&self, deadline: tokio::time::Instant, progress: DrainProgress<'_>) {
        if let Some(queue) = &self.actors.queue {
            drain::drain(queue, deadline, progress).await;
        }
    }

    /// Waits for the supervisor's verdict: it only returns when the supervisor stops,
    /// which is fatal. Cancel-safe, for a `select!` loop.
    pub async fn verdict(&mut self) -> Verdict {
        match (&mut self.supervisor).await {
            Ok(Some(gave_up)) => Verdict::GaveUp(gave_up),
            _ => Verdict::Stopped,
        }
    }

    /// The supervisor's verdict if it has already given up on an actor.
    pub async fn gave_up(&mut self) -> Option<GaveUp> {
        if !self.supervisor.is_finished() {
            return None;
        }
        (&mut self.supervisor).await.ok().flatten()
    }
}

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::refresher::RefreshPolicy;
    use crate::retry_queue::BackoffPolicy;
    use crate::supervisor::RestartPolicy;
    use crate::system::RefreshConfig;
    use std::collections::HashMap;

    /// A configuration with no Postgres and no sources, its data under `dir`.
    pub(crate) fn files_only(dir: &std::path::Path) -> SystemConfig {
        SystemConfig {
            data_dir: dir.join("data"),
            project: "runtime-test".into(),
            memory_ttl: Duration::from_secs(60),
            restart_policy: RestartPolicy::default(),
            hits_by_message: false,
            retention_days: HashMap::new(),
            postgres: None,
            rules: Default::default(),
            refresh: RefreshConfig {
                caches: Vec::new(),
                policy: RefreshPolicy {
                    fetch_timeout: Duration::from_secs(5),
                    jitter: Duration::ZERO,
                    backoff: BackoffPolicy {
                        initial_interval: Duration::from_secs(1),
                        max_interval: Duration::from_secs(5),
                        multiplier: 2.0,
                    },
                },
                emergency: false,
            },
        }
    }

    #[actix_rt::test]
    async fn without_postgres_the_lifecycle_runs_from_the_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut runtime = Runtime::boot(&files_only(dir.path()), Arc::new(Metrics::new())).expect("boots");
        let started = runtime.startup().await.expect("starts");
        assert_eq!(started.caches_on_disk, 0);
        assert!(matches!(started.sync, SyncOutcome::Disabled));
        assert!(!started.sync.synced());
        runtime.go_live(Duration::from_secs(3600));
        assert_eq!(runtime.pending_saves(), 0);
        assert!(!runtime.writes_behind());
        assert_eq!(runtime.refresh_all().await, 0);
        runtime.drain(tokio::time::Instant::now(), &|_, _| panic!("nothing to drain")).await;
        runtime.quiesce();
        assert_eq!(runtime.gave_up().await, None);
        let offline = runtime.startup_offline().await.expect("starts");
        assert!(matches!(offline.sync, SyncOutcome::Disabled));
    }

    #[test]
    fn the_verdict_names_the_actor_or_says_the_supervisor_stopped() {
        let gave_up = GaveUp { actor: "file", max: 3, window: Duration::from_secs(60) };
        assert_eq!(Verdict::GaveUp(gave_up.clone()).to_string(), gave_up.to_string());
        assert_eq!(Verdict::Stopped.to_string(), "the supervisor stopped");
    }
}
