//! Starting the actors under supervision, in dependency order, one function per actor.

use super::error::BootError;
use crate::cache_rules::LiveRules;
use crate::files::{FileHandle, FileTier, FileTierConfig};
use crate::if_match::IfMatch;
use crate::listener::{self, FollowConfig, ListenerPeers};
use crate::memory::{Loader, MemoryHandle, MemoryTier, MemoryView};
use crate::metrics::Metrics;
use crate::refresher::{Refresher, RefresherHandle};
use crate::retry_queue::{Peers, RetryConfig, RetryQueue, RetryQueueHandle};
use crate::save_flow::SaveFlow;
use crate::store::{Store, StoreConfig, StoreHandle};
use crate::supervisor::health::Mailboxes;
use crate::supervisor::{ActorId, FailureReporter};
use crate::system::{refresh_caches, SystemConfig};
use crate::tiers::{ReadPeers, ReadPolicy, Tiers};
use actix::{Arbiter, Supervisor as ActixSupervisor};
use std::sync::Arc;
use tokio::sync::watch;

/// What every actor is started with: the configuration, where failures are reported,
/// and the metrics registry.
pub(super) struct Ctx<'a> {
    pub config: &'a SystemConfig,
    pub reporter: FailureReporter,
    pub metrics: Arc<Metrics>,
}

/// The running actors' handles, as the runtime's lifecycle steps use them.
#[derive(Clone)]
pub(super) struct Actors {
    pub memory: MemoryHandle,
    pub files: FileHandle,
    pub store: Option<StoreHandle>,
    pub queue: Option<RetryQueueHandle>,
    pub refresher: RefresherHandle,
    /// Each cache's admission rules, shared with the refresher and the memory loader.
    pub rules: LiveRules,
    /// With Postgres: `If-Match` as a compare-and-set on the row.
    pub if_match: Option<IfMatch>,
}

impl Actors {
    /// The mailboxes the health probe judges (those that run).
    pub fn mailboxes(&self) -> Mailboxes {
        let (memory, files, refresher) = (self.memory.clone(), self.files.clone(), self.refresher.clone());
        let mut mailboxes = Mailboxes::default()
            .with(ActorId::Memory, move || memory.connected())
            .with(ActorId::File, move || files.connected())
            .with(ActorId::Refresher, move || refresher.connected());
        if let Some(store) = self.store.clone() {
            mailboxes = mailboxes.with(ActorId::Store, move || store.connected());
        }
        if let Some(queue) = self.queue.clone() {
            mailboxes = mailboxes.with(ActorId::Retry, move || queue.connected());
        }
        mailboxes
    }
}

/// The started actors, the one save flow they share and the read flow over them.
pub(super) struct Started {
    pub actors: Actors,
    /// Built once: every save, adoption and purge goes through it (and its clones).
    pub saver: SaveFlow,
    pub tiers: Tiers,
    /// Keeps the file tier's thread alive.
    pub file_arbiter: Arbiter,
    /// Opened once the startup sync is over (see [`super::StartupGate`]).
    pub startup_synced: watch::Sender<bool>,
    /// The listener, ready to start: the daemon starts it before its startup sync; the
    /// offline commands, which nobody else's writes concern, never do.
    pub listener: Option<PendingListener>,
}

/// What starting the listener takes, kept until the daemon's startup step.
pub(super) struct PendingListener {
    peers: ListenerPeers,
    config: FollowConfig,
    reporter: FailureReporter,
    metrics: Arc<Metrics>,
}

impl PendingListener {
    /// Follows the other instances from now on (see [`listener::spawn`]).
    pub fn start(self) {
        listener::spawn(self.peers, self.config, self.reporter, self.metrics);
    }
}

/// Starts every actor in dependency order. Must run inside an actix `System`.
pub(super) fn start_actors(cx: &Ctx<'_>) -> Result<Started, BootError> {
    // 1. The file tier, on a thread of its own.
    let (files, file_arbiter) = start_file_tier(cx);
    // 2. The Postgres store, when enabled (connections are made lazily).
    let store = start_store(cx)?;
    // 3. The memory tier, reading through the file tier and Postgres on misses; it
    //    checks what it loads against the rules in force, as every save is admitted.
    let rules = LiveRules::new(cx.config.rules.clone());
    let (memory, view) = start_memory(cx, &files, store.as_ref(), &rules);
    // 4. The retry queue, which rebuilds itself from the files at start.
    let queue = store.as_ref().and_then(|store| start_queue(cx, &files, &memory, store));
    // 5. The one save flow, then the refresher, idle until the runtime goes live
    //    (`Begin`): built with the flow, it is told of every other save from then on.
    let if_match = store
        .clone()
        .zip(cx.config.postgres.as_ref())
        .map(|(store, pg)| IfMatch::new(store, pg.single_instance, cx.config.retention_days.clone()));
    let saver = SaveFlow::new(files.clone(), memory.clone(), queue.clone(), rules.clone()).checked_by(if_match.clone());
    let refresher = start_refresher(cx, saver.clone(), store.as_ref());
    saver.observed_by(refresher.clone());
    // 6. Following the other instances: the row heads read every few seconds and at
    //    each NOTIFY on the project's channel, only once the startup sync is over;
    //    prepared here, started by the daemon (the offline commands follow no one).
    let (startup_synced, startup_synced_rx) = watch::channel(false);
    let mut listener = None;
    if let (Some(store), Some(queue), Some(pg)) = (&store, &queue, &cx.config.postgres) {
        let peers = ListenerPeers {
            store: store.clone(),
            queue: queue.clone(),
            saver: saver.clone(),
            startup_synced: startup_synced_rx,
        };
        let config = FollowConfig {
            connect: pg.connect.clone(),
            project: cx.config.project.clone(),
            poll_every: pg.heads_poll_interval,
        };
        listener = Some(PendingListener { peers, config, reporter: cx.reporter.clone(), metrics: cx.metrics.clone() });
    }
    let config = cx.config;
    let policy = ReadPolicy {
        ttl: config.memory_ttl,
        hits_by_message: config.hits_by_message,
        emergency: config.refresh.emergency,
    };
    let peers = ReadPeers {
        memory: memory.clone(),
        files: files.clone(),
        view,
        queue: queue.clone(),
        refresher: Some(refresher.clone()),
    };
    let tiers = Tiers::new(peers, saver.clone(), policy);
    let actors = Actors { memory, files, store, queue, refresher, rules, if_match };
    Ok(Started { actors, saver, tiers, file_arbiter, startup_synced, listener })
}

/// The file tier runs on a thread of its own: fsync blocks, and must not stall the
/// memory tier or the API.
fn start_file_tier(cx: &Ctx<'_>) -> (FileHandle, Arbiter) {
    let arbiter = Arbiter::new();
    let config = FileTierConfig { data_dir: cx.config.data_dir.clone(), project: cx.config.project.clone() };
    let (r, m) = (cx.reporter.clone(), cx.metrics.clone());
    let addr = ActixSupervisor::start_in_arbiter(&arbiter.handle(), move |_| FileTier::new(config, r, m));
    (FileHandle::new(addr), arbiter)
}

/// The Postgres store when enabled; its pool cannot be made from a bad URL or TLS file.
fn start_store(cx: &Ctx<'_>) -> Result<Option<StoreHandle>, BootError> {
    let Some(pg) = &cx.config.postgres else { return Ok(None) };
    let config = StoreConfig { connect: pg.connect.clone(), project: cx.config.project.clone() };
    let store = Store::new(config, cx.reporter.clone(), cx.metrics.clone())?;
    Ok(Some(StoreHandle::new(ActixSupervisor::start(move |_| store))))
}

fn start_memory(
    cx: &Ctx<'_>,
    files: &FileHandle,
    store: Option<&StoreHandle>,
    rules: &LiveRules,
) -> (MemoryHandle, MemoryView) {
    let loader = Loader::new(files.clone(), store.cloned(), rules.clone());
    let (tier, view) = MemoryTier::new(loader, cx.config.memory_ttl, cx.reporter.clone(), cx.metrics.clone());
    (MemoryHandle::new(ActixSupervisor::start(move |_| tier), view.shelf()), view)
}

/// The retry queue exists with Postgres only.
fn start_queue(
    cx: &Ctx<'_>,
    files: &FileHandle,
    memory: &MemoryHandle,
    store: &StoreHandle,
) -> Option<RetryQueueHandle> {
    let pg = cx.config.postgres.as_ref()?;
    let config = RetryConfig {
        data_dir: cx.config.data_dir.clone(),
        policy: pg.retry,
        retention_days: cx.config.retention_days.clone(),
    };
    let peers = Peers { files: files.clone(), memory: memory.clone(), store: store.clone() };
    let (queue, view) = RetryQueue::new(config, peers, cx.reporter.clone(), cx.metrics.clone());
    Some(RetryQueueHandle::new(ActixSupervisor::start(move |_| queue), view))
}

fn start_refresher(cx: &Ctx<'_>, saver: SaveFlow, store: Option<&StoreHandle>) -> RefresherHandle {
    let config = cx.config;
    let caches = refresh_caches(&config.data_dir, &config.refresh.caches, store.cloned());
    // Leadership needs a session; behind a transaction pooler there is none.
    let statement_cache = config.postgres.as_ref().is_some_and(|p| p.connect.options.statement_cache);
    let leadership = store.cloned().filter(|_| statement_cache);
    let refresher =
        Refresher::new(caches, config.refresh.policy.clone(), saver, cx.reporter.clone(), cx.metrics.clone())
            .with_leadership(leadership);
    let view = refresher.view();
    RefresherHandle::new(ActixSupervisor::start(move |_| refresher), view)
}
