//! `tiercache run`: start the actors, bind the API, become ready, then obey signals
//! until a graceful stop (exit 0) or the supervisor giving up (exit 70).

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::exit::{Fatal, CONFIG, SOFTWARE, UNAVAILABLE};
use crate::liveness::Liveness;
use crate::lock::DataDirLock;
use crate::reload;
use crate::retention::{self, RetentionHandle};
use crate::sd_notify::Notifier;
use crate::signals::{self, Control};
use crate::status;
use crate::telemetry::LogControl;
use crate::wiring;
use actix_web::web;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tiercache_actors::metrics::Metrics;
use tiercache_actors::retry_queue::backoff::Backoff;
use tiercache_actors::startup;
use tiercache_actors::store::StoreError;
use tiercache_actors::system;
use tiercache_actors::tiers::Tiers;
use tokio::sync::mpsc;

/// Where the configuration came from, so SIGHUP can read it again.
pub struct ConfigSource {
    /// `--config`, if given.
    pub path: Option<PathBuf>,
}

/// Runs the daemon until it stops. Must run inside an actix `System`.
///
/// # Errors
/// A [`Fatal`] with the exit code of SPEC §3.
pub async fn run(source: ConfigSource, settings: Settings, log: LogControl) -> Result<(), Fatal> {
    // 1. One instance per data directory.
    let _lock = DataDirLock::acquire(&settings.data_dir)?;
    crate::owner::claim(&settings.data_dir, &settings.project)?;
    for warning in &settings.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }

    // 1b. The API's tokens, schemas and TLS certificate, read before any actor starts:
    //     a bad one is a configuration error (exit 78).
    let security = api::Security::load(&settings, None)?;
    let tls = api::security::tls_from(&settings)?;
    security.log_summary("API security policy");
    let retention_every = retention::interval(&|k| std::env::var(k).ok())?;

    // 2. Signals first, so that a SIGTERM during startup is not lost.
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    signals::forward(control_tx)
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("cannot install signal handlers: {e}")))?;

    // 3. The actors, under supervision.
    let metrics = Arc::new(Metrics::new());
    log.count_rejected_requests(metrics.http_requests_rejected.clone());
    let system_config = wiring::system_config(&settings)?;
    let running = system::start(&system_config, metrics.clone())
        .map_err(|e| Fatal::new(CONFIG, format!("config error: postgres.url: {e}")))?;
    let supervisor = actix_rt::spawn(running.supervisor.run());

    // 4. The API, bound but not ready.
    let notifier = Arc::new(Notifier::from_env());
    let liveness = Arc::new(Liveness::new(notifier.health_period()));
    let state = web::Data::new(AppState {
        tiers: running.tiers.clone(),
        policy: ArcSwap::from_pointee(api::policy_from(&settings)),
        security: ArcSwap::from_pointee(security),
        tls,
        ready: AtomicBool::new(false),
        read_metrics: ArcSwap::from_pointee(api::state::ReadMetrics::new(
            &metrics,
            settings.caches.iter().map(|c| &c.name),
        )),
        metrics,
        liveness: liveness.clone(),
    });
    let server = api::bind(&settings, state.clone())?;
    let server_handle = server.handle();
    actix_rt::spawn(server);

    // 5. Startup is done once the file tier has indexed the data directory.
    let index = running
        .tiers
        .files()
        .list()
        .await
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("the file tier did not start: {e}")))?;
    // 6. Postgres: load the project's rows and repair the files before serving. When
    //    Postgres is down, start from the files and keep trying in the background.
    if running.tiers.store().is_some() {
        let limit = settings.postgres.connect_timeout + settings.postgres.statement_timeout;
        if let Some(pg) = &system_config.postgres {
            crate::pooler_check::refuse_transaction_pooler(&pg.connect, limit).await?;
        }
        let synced = tokio::time::timeout(limit, startup::sync_from_postgres(&running.tiers)).await;
        match synced {
            Ok(Ok(report)) => {
                tracing::info!(
                    rows = report.rows,
                    from_postgres = report.from_postgres,
                    to_postgres = report.to_postgres,
                    in_sync = report.in_sync,
                    "loaded from Postgres"
                );
            }
            Ok(Err(e @ StoreError::NoProject(_))) => {
                tracing::error!(
                    tier = "postgres", alert = true, error = %e,
                    "Postgres is up but the project is not registered; serving from files until it is"
                );
                sync_in_background(running.tiers.clone(), &settings);
            }
            Ok(Err(e)) => {
                tracing::error!(tier = "postgres", alert = true, error = %e, "Postgres unavailable at startup; serving from files");
                sync_in_background(running.tiers.clone(), &settings);
            }
            Err(_) => {
                tracing::error!(
                    tier = "postgres",
                    alert = true,
                    "Postgres did not answer at startup; serving from files"
                );
                sync_in_background(running.tiers.clone(), &settings);
            }
        }
    }
    running.startup_synced.open();
    state.set_ready(true);
    tracing::info!(caches_on_disk = index.len(), project = %settings.project, "ready");
    // systemd: READY=1, then the health loop's verdicts (`/healthz`), WATCHDOG=1
    // pings and STATUS= updates.
    notifier.ready(&running.tiers, settings.caches.len());
    actix_rt::spawn(notifier.clone().health_loop(running.tiers.clone(), liveness));

    // 7. Retention: a pass now (Postgres or not), then periodically, on the
    //    configuration in force.
    let retention = RetentionHandle::start(running.tiers.clone(), &settings, retention_every);

    // 8. Schedules start after readiness: overdue caches refresh now, readiness never
    //    waits for an upstream API.
    if let Some(refresher) = running.tiers.refresher() {
        refresher.begin();
    }

    let mut settings = settings;
    let mut supervisor = supervisor;
    loop {
        tokio::select! {
            gave_up = &mut supervisor => {
                state.set_ready(false);
                let why = match gave_up {
                    Ok(Some(g)) => g.to_string(),
                    _ => "the supervisor stopped".to_owned(),
                };
                return Err(Fatal::new(SOFTWARE, format!("supervisor gave up: {why}")));
            }
            control = control_rx.recv() => match control {
                Some(Control::Shutdown(signal)) => {
                    tracing::info!(signal, "shutting down");
                    notifier.stopping("stopping: draining saves to Postgres");
                    state.set_ready(false);
                    if let Some(refresher) = running.tiers.refresher() {
                        refresher.quiesce();
                    }
                    let deadline = tokio::time::Instant::now() + settings.shutdown.timeout;
                    let stop_and_drain = async {
                        let stopped = tokio::time::timeout_at(deadline, server_handle.stop(true)).await;
                        tracing::info!(finished = stopped.is_ok(), "API stopped");
                        if settings.shutdown.graceful {
                            drain(&running.tiers, deadline, &notifier).await;
                        } else if let Some(queue) = running.tiers.queue() {
                            let left = queue.view().snapshot().pending.len();
                            tracing::info!(pending = left, "graceful drain is off; pending saves stay on disk for the next start");
                        }
                    };
                    tokio::select! {
                        () = stop_and_drain => {}
                        again = signals::another_shutdown(&mut control_rx) => {
                            let left = running.tiers.queue().map_or(0, |q| q.view().snapshot().pending.len());
                            tracing::warn!(
                                signal = again, pending = left,
                                "second signal: stopping now; pending saves stay on disk for the next start"
                            );
                        }
                    }
                    return Ok(());
                }
                Some(Control::Reload) => {
                    notifier.reloading();
                    let tiers = &running.tiers;
                    let targets = reload::Targets { state: &state, log: &log, tiers, retention: &retention };
                    reload::reload(&source, &mut settings, &targets);
                    notifier.ready(&running.tiers, settings.caches.len());
                }
                Some(Control::RefreshAll) => {
                    if let Some(refresher) = running.tiers.refresher() {
                        let started = refresher.refresh_all().await;
                        tracing::info!(started, "SIGUSR1: refreshing every cache with a source");
                    }
                }
                Some(Control::Status) => status::log_snapshot(&state, &settings).await,
                None => return Ok(()),
            }
        }
    }
}

/// Sends what the retry queue holds until it is empty or `deadline` passes; what is
/// left stays on disk for the next start. While saves keep leaving the queue, systemd
/// is asked (`EXTEND_TIMEOUT_USEC`) not to kill the process before `deadline`.
pub(crate) async fn drain(tiers: &Tiers, deadline: tokio::time::Instant, notifier: &Notifier) {
    let Some(queue) = tiers.queue() else { return };
    let started = tokio::time::Instant::now();
    let pending = queue.view().snapshot().pending.len();
    if pending == 0 {
        return;
    }
    let up_to = deadline.saturating_duration_since(started);
    tracing::info!(
        pending,
        timeout_ms = up_to.as_millis() as u64,
        "draining {pending} saves to Postgres, up to {}; signal again to stop now",
        humantime::format_duration(std::time::Duration::from_secs(up_to.as_secs().max(1)))
    );
    queue.drain();
    let mut extension = TimeoutExtension::default();
    loop {
        let snapshot = queue.view().snapshot();
        let left = snapshot.pending.len();
        if left == 0 {
            tracing::info!(duration_ms = started.elapsed().as_millis() as u64, "retry queue drained");
            return;
        }
        // Nothing can succeed before an operator acts (an unregistered project): no wait.
        if let Some(why) = &snapshot.blocked {
            tracing::warn!(pending = left, error = %why, "pending saves cannot reach Postgres now; they stay on disk for the next start");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pending = left, "shutdown timeout: pending saves stay on disk for the next start");
            return;
        }
        extension.ask_while_moving(left, deadline, notifier);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asks systemd for more time (`EXTEND_TIMEOUT_USEC`) while saves keep leaving the
/// queue, at most once a second.
#[derive(Default)]
struct TimeoutExtension {
    least_left: Option<usize>,
    asked_at: Option<tokio::time::Instant>,
}

impl TimeoutExtension {
    fn ask_while_moving(&mut self, left: usize, deadline: tokio::time::Instant, notifier: &Notifier) {
        let now = tokio::time::Instant::now();
        let moving = self.least_left.is_none_or(|least| left < least);
        if moving && self.asked_at.is_none_or(|t| now - t >= std::time::Duration::from_secs(1)) {
            let more = deadline.saturating_duration_since(now) + std::time::Duration::from_secs(5);
            notifier.extend_timeout(more, &format!("stopping: draining {left} pending saves to Postgres"));
            self.asked_at = Some(now);
        }
        self.least_left = Some(self.least_left.map_or(left, |least| least.min(left)));
    }
}

/// Retries the startup sync until Postgres answers.
fn sync_in_background(tiers: Tiers, settings: &Settings) {
    let settings = settings.clone();
    actix_rt::spawn(async move {
        // The same waits, jitter included, as every other retry (`[retry]`).
        let mut backoff = Backoff::new(&wiring::retry_backoff(&settings));
        loop {
            tokio::time::sleep(backoff.next_wait()).await;
            match startup::sync_from_postgres(&tiers).await {
                Ok(report) => {
                    tracing::info!(
                        rows = report.rows,
                        from_postgres = report.from_postgres,
                        to_postgres = report.to_postgres,
                        "Postgres is back; files reconciled"
                    );
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "Postgres still unavailable"),
            }
        }
    });
}
