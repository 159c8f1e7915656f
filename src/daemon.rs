//! `tiercache run`: start the actors, bind the API, become ready, then obey signals
//! until a graceful stop (exit 0) or the supervisor giving up (exit 70).
//!
//! The lifecycle itself (boot, startup sync, go live, drain) is the actors crate's
//! [`Runtime`]; this file adds the process edges around it, in order: lock → security →
//! signals → boot → bind → startup sync → ready → control loop.

use crate::api::tls::CertResolver;
use crate::api::{self, AppState};
use crate::config::{Settings, ShutdownSettings};
use crate::exit::{Fatal, SOFTWARE, UNAVAILABLE};
use crate::liveness::Liveness;
use crate::lock::DataDirLock;
use crate::reload;
use crate::retention;
use crate::sd_notify::Notifier;
use crate::signals::{self, Control};
use crate::status;
use crate::telemetry::LogControl;
use crate::wiring;
use actix_web::dev::ServerHandle;
use actix_web::web;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tiercache_actors::metrics::Metrics;
use tiercache_actors::runtime::{Runtime, Startup};
use tiercache_actors::supervisor::ActorId;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where the configuration came from, so SIGHUP can read it again.
pub(crate) struct ConfigSource {
    /// `--config`, if given.
    pub path: Option<PathBuf>,
}

/// Runs the daemon until it stops. Must run inside an actix `System`.
///
/// # Errors
/// A [`Fatal`] with its exit code (the table in docs/operations.md).
pub(crate) async fn run(source: ConfigSource, settings: Settings, log: LogControl) -> Result<(), Fatal> {
    // 1. One instance per data directory.
    let _lock = take_data_dir(&settings)?;
    // 2. The API's tokens, schemas and TLS certificate, read before any actor starts:
    //    a bad one is a configuration error (exit 78).
    let edges = Edges::load(&settings)?;
    // 3. Signals first, so that a SIGTERM during startup is not lost.
    let control_rx = install_signals()?;
    // 4. The actors, under supervision.
    let metrics = Arc::new(Metrics::new());
    log.count_rejected_requests(metrics.http_requests_rejected.clone());
    let mut runtime = boot(&settings, metrics.clone())?;
    // 5. The API, bound but not ready (it answers "not ready" during the sync).
    let api = Api::bind(&settings, edges, &runtime, metrics)?;
    // 6. The file tier's index, then Postgres: load the project's rows and repair the
    //    files before serving (from the files alone, retrying, when Postgres is down).
    let started = runtime.startup().await?;
    // 7. Ready; retention's first pass; then the schedules and the listener go live.
    api.become_ready(&runtime, &settings, &started);
    runtime.go_live(api.retention_every);
    let daemon = Daemon { source, settings, log, runtime, api, control_rx };
    daemon.control_loop().await
}

/// Takes the `data_dir` lock and claims the directory for this project.
fn take_data_dir(settings: &Settings) -> Result<DataDirLock, Fatal> {
    let lock = DataDirLock::acquire(&settings.data_dir)?;
    crate::owner::claim(&settings.data_dir, &settings.project)?;
    for warning in &settings.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }
    Ok(lock)
}

/// What the process edges read from the configuration before any actor starts.
struct Edges {
    security: api::Security,
    tls: Option<Arc<CertResolver>>,
    retention_every: Duration,
}

impl Edges {
    fn load(settings: &Settings) -> Result<Self, Fatal> {
        let security = api::Security::load(settings, None)?;
        let tls = api::security::tls_from(settings)?;
        security.log_summary("API security policy");
        let retention_every = retention::interval(&|k| std::env::var(k).ok())?;
        Ok(Self { security, tls, retention_every })
    }
}

fn install_signals() -> Result<mpsc::UnboundedReceiver<Control>, Fatal> {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    signals::forward(control_tx)
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("cannot install signal handlers: {e}")))?;
    Ok(control_rx)
}

/// Boots the actors on the configuration (each cache's rules loaded with it).
fn boot(settings: &Settings, metrics: Arc<Metrics>) -> Result<Runtime, Fatal> {
    let config = wiring::system_config(settings)?;
    Ok(Runtime::boot(&config, metrics)?)
}

/// The HTTP API and what tells the outside world about readiness and health.
struct Api {
    state: web::Data<AppState>,
    server: ServerHandle,
    notifier: Arc<Notifier>,
    liveness: Arc<Liveness>,
    retention_every: Duration,
}

impl Api {
    /// Binds the listeners (exit 69 when a port is in use) and starts serving, not ready.
    fn bind(settings: &Settings, edges: Edges, runtime: &Runtime, metrics: Arc<Metrics>) -> Result<Self, Fatal> {
        let notifier = Arc::new(Notifier::from_env());
        let liveness = Arc::new(Liveness::new(notifier.health_period()));
        let state = web::Data::new(AppState {
            tiers: runtime.tiers().clone(),
            saver: runtime.saver().clone(),
            mailboxes: runtime.mailboxes(),
            policy: ArcSwap::from_pointee(api::policy_from(settings)),
            security: ArcSwap::from_pointee(edges.security),
            tls: edges.tls,
            ready: AtomicBool::new(false),
            read_metrics: ArcSwap::from_pointee(api::state::ReadMetrics::new(
                &metrics,
                settings.caches.iter().map(|c| &c.name),
            )),
            metrics,
            liveness: liveness.clone(),
            webhooks: api::webhook_intake::WebhookIntake::new(&settings.data_dir, runtime.postgres_store()),
        });
        let server = api::bind(settings, state.clone())?;
        let handle = server.handle();
        runtime.spawn(ActorId::Api, async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, alert = true, "the HTTP server stopped");
            }
        });
        Ok(Self { state, server: handle, notifier, liveness, retention_every: edges.retention_every })
    }

    /// Readiness on, and systemd told (READY=1, then the health loop's verdicts,
    /// WATCHDOG=1 pings and STATUS= updates).
    fn become_ready(&self, runtime: &Runtime, settings: &Settings, started: &Startup) {
        self.state.set_ready(true);
        tracing::info!(caches_on_disk = started.caches_on_disk, project = %settings.project, "ready");
        self.notifier.ready(runtime.tiers(), settings.caches.len());
        runtime.spawn(
            ActorId::Api,
            self.notifier.clone().health_loop(runtime.tiers().clone(), runtime.mailboxes(), self.liveness.clone()),
        );
    }
}

/// The running daemon, obeying signals until it stops.
struct Daemon {
    source: ConfigSource,
    settings: Settings,
    log: LogControl,
    runtime: Runtime,
    api: Api,
    control_rx: mpsc::UnboundedReceiver<Control>,
}

impl Daemon {
    async fn control_loop(mut self) -> Result<(), Fatal> {
        loop {
            tokio::select! {
                verdict = self.runtime.verdict() => {
                    self.api.state.set_ready(false);
                    return Err(Fatal::new(SOFTWARE, format!("supervisor gave up: {verdict}")));
                }
                control = self.control_rx.recv() => match control {
                    Some(Control::Shutdown(signal)) => {
                        self.shutdown(signal).await;
                        return Ok(());
                    }
                    Some(Control::Reload) => self.reload(),
                    Some(Control::RefreshAll) => self.refresh_all().await,
                    Some(Control::Status) => status::log_snapshot(&self.api.state, &self.settings).await,
                    None => return Ok(()),
                }
            }
        }
    }

    /// SIGTERM/SIGINT: readiness off, no more refreshes, the API stops, the queue
    /// drains until `shutdown.timeout`; a second signal stops at once.
    async fn shutdown(&mut self, signal: &'static str) {
        tracing::info!(signal, "shutting down");
        self.api.notifier.stopping("stopping: draining saves to Postgres");
        self.api.state.set_ready(false);
        self.runtime.quiesce();
        let deadline = Instant::now() + self.settings.shutdown.timeout;
        let stop = stop_and_drain(&self.runtime, &self.api, &self.settings.shutdown, deadline);
        tokio::select! {
            () = stop => {}
            again = signals::another_shutdown(&mut self.control_rx) => {
                tracing::warn!(
                    signal = again, pending = self.runtime.pending_saves(),
                    "second signal: stopping now; pending saves stay on disk for the next start"
                );
            }
        }
    }

    /// SIGHUP: re-read the configuration and apply what can change live.
    fn reload(&mut self) {
        self.api.notifier.reloading();
        let targets = reload::Targets { state: &self.api.state, log: &self.log, runtime: &self.runtime };
        reload::reload(&self.source, &mut self.settings, &targets);
        self.api.notifier.ready(self.runtime.tiers(), self.settings.caches.len());
    }

    /// SIGUSR1: refresh every cache with a source now.
    async fn refresh_all(&self) {
        let started = self.runtime.refresh_all().await;
        tracing::info!(started, "SIGUSR1: refreshing every cache with a source");
    }
}

/// Stops the HTTP server (finishing requests in flight), then drains the retry queue
/// when `shutdown.graceful`, asking systemd for more time while saves keep leaving it.
async fn stop_and_drain(runtime: &Runtime, api: &Api, shutdown: &ShutdownSettings, deadline: Instant) {
    let stopped = tokio::time::timeout_at(deadline, api.server.stop(true)).await;
    tracing::info!(finished = stopped.is_ok(), "API stopped");
    if shutdown.graceful {
        let notifier = &api.notifier;
        runtime.drain(deadline, &|more, status| notifier.extend_timeout(more, status)).await;
    } else if runtime.writes_behind() {
        let left = runtime.pending_saves();
        tracing::info!(pending = left, "graceful drain is off; pending saves stay on disk for the next start");
    }
}
