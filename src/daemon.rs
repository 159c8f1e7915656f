//! `tiercache run`: start the actors, bind the API, become ready, then obey signals
//! until a graceful stop (exit 0) or the supervisor giving up (exit 70).

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::exit::{Fatal, SOFTWARE, UNAVAILABLE};
use crate::lock::DataDirLock;
use crate::signals::{self, Control};
use crate::status;
use crate::telemetry::LogControl;
use actix_web::web;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tiercache_actors::metrics::Metrics;
use tiercache_actors::supervisor::RestartPolicy;
use tiercache_actors::system::{self, SystemConfig};
use tokio::sync::mpsc;

/// Where the configuration came from, so SIGHUP can read it again.
pub struct ConfigSource {
    /// `--config`, if given.
    pub path: Option<PathBuf>,
}

fn system_config(settings: &Settings) -> SystemConfig {
    SystemConfig {
        data_dir: settings.data_dir.clone(),
        project: settings.project.clone(),
        memory_ttl: settings.memory.ttl,
        restart_policy: RestartPolicy {
            max_restarts: settings.supervisor.max_restarts,
            window: settings.supervisor.restart_window,
        },
        // Only builds with failpoints, and only when `memory::get` is armed, pay for a
        // message per memory hit.
        hits_by_message: cfg!(feature = "failpoints")
            && std::env::var("FAILPOINTS").is_ok_and(|f| f.contains("memory::get")),
    }
}

/// Runs the daemon until it stops. Must run inside an actix `System`.
///
/// # Errors
/// A [`Fatal`] with the exit code of SPEC §3.
pub async fn run(source: ConfigSource, settings: Settings, log: LogControl) -> Result<(), Fatal> {
    // 1. One instance per data directory.
    let _lock = DataDirLock::acquire(&settings.data_dir)?;
    for warning in &settings.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }

    // 2. Signals first, so that a SIGTERM during startup is not lost.
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    signals::forward(control_tx)
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("cannot install signal handlers: {e}")))?;

    // 3. The actors, under supervision.
    let metrics = Arc::new(Metrics::new());
    let running = system::start(&system_config(&settings), metrics.clone());
    let supervisor = actix_rt::spawn(running.supervisor.run());

    // 4. The API, bound but not ready.
    let state = web::Data::new(AppState {
        tiers: running.tiers.clone(),
        policy: ArcSwap::from_pointee(api::policy_from(&settings)),
        ready: AtomicBool::new(false),
        metrics,
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
    state.set_ready(true);
    tracing::info!(caches_on_disk = index.len(), project = %settings.project, "ready");

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
                    state.set_ready(false);
                    let stopped = tokio::time::timeout(settings.shutdown.timeout, server_handle.stop(true)).await;
                    tracing::info!(finished = stopped.is_ok(), "stopped");
                    return Ok(());
                }
                Some(Control::Reload) => reload(&source, &mut settings, &state, &log),
                Some(Control::RefreshAll) => {
                    tracing::info!("SIGUSR1: no cache has a running refresher in this build; nothing to refresh");
                }
                Some(Control::Status) => status::log_snapshot(&state, &settings).await,
                None => return Ok(()),
            }
        }
    }
}

/// SIGHUP: re-reads the configuration; a bad one is rejected and the running one kept.
fn reload(source: &ConfigSource, settings: &mut Settings, state: &AppState, log: &LogControl) {
    let env = |k: &str| std::env::var(k).ok();
    let new = match Settings::load(source.path.as_deref(), &env) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(error = %e, alert = true, "reload rejected; keeping the running configuration");
            return;
        }
    };
    if let Err(e) = log.set_level(&new.log.level) {
        tracing::error!(error = %e, "log level not applied");
    }
    state.policy.store(Arc::new(api::policy_from(&new)));
    let needs_restart: Vec<&str> = [
        ("project", settings.project != new.project),
        ("data_dir", settings.data_dir != new.data_dir),
        ("api.listen", format!("{:?}", settings.api.listen) != format!("{:?}", new.api.listen)),
        ("memory.ttl", settings.memory.ttl != new.memory.ttl),
        ("postgres", format!("{:?}", settings.postgres) != format!("{:?}", new.postgres)),
        ("supervisor", format!("{:?}", settings.supervisor) != format!("{:?}", new.supervisor)),
        ("log.format", settings.log.format != new.log.format),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect();
    for key in &needs_restart {
        tracing::warn!(key, "changed in the configuration file; takes effect at the next restart");
    }
    *settings = new;
    tracing::info!(level = %settings.log.level, "configuration reloaded");
}
