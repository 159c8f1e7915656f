//! `import`, `export` and `restore`: offline commands on the `data_dir`.
//!
//! Each takes the `data_dir` lock (exit 73 while a daemon runs there) and starts the
//! same actors as the daemon, on the same configuration, without the API and without
//! schedules: the file tier indexes the directory, and with Postgres enabled the
//! startup sync loads the project's rows first, so versions continue above what
//! Postgres holds. Saves go through the file tier and the retry queue like any other;
//! at the end the queue is drained to Postgres within `shutdown.timeout`, and what is
//! not drained stays on disk for the daemon's next start.
//!
//! Exit codes of their own (sysexits, docs/operations.md): 65 bad data (not JSON, a bad
//! timestamp, a damaged envelope), 66 input missing or unreadable.

mod export;
pub(crate) mod get;
mod import;
mod restore;
pub(crate) mod status;
mod strava;

pub(crate) use export::export;
pub(crate) use get::{get, Origin};
pub(crate) use import::import;
pub(crate) use restore::restore;
pub(crate) use status::status;
pub(crate) use strava::strava;

use crate::config::{CacheSettings, Settings};
use crate::exit::{Fatal, SOFTWARE, USAGE};
use crate::lock::DataDirLock;
use crate::wiring;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use tiercache_actors::domain::CacheName;
use tiercache_actors::metrics::Metrics;
use tiercache_actors::runtime::Runtime;
use tiercache_actors::save_flow::SaveFlow;
use tokio::time::Instant;

/// The input is not what it must be (EX_DATAERR).
pub(crate) const DATAERR: i32 = 65;
/// The input file or directory is missing or unreadable (EX_NOINPUT).
pub(crate) const NOINPUT: i32 = 66;

/// The running actors of one offline command.
pub(crate) struct Offline {
    /// The runtime's one save flow, as the daemon saves through it.
    pub saver: SaveFlow,
    /// Whether Postgres is enabled.
    pub postgres_enabled: bool,
    /// With Postgres enabled: whether the startup sync read the rows. `false` means the
    /// current versions are known from the files only.
    pub postgres_synced: bool,
}

/// The cache `name` as configured, or exit 64 saying why not.
pub(crate) fn configured<'a>(settings: &'a Settings, command: &str, name: &str) -> Result<&'a CacheSettings, Fatal> {
    let parsed = CacheName::parse(name)
        .map_err(|e| Fatal::new(USAGE, format!("{command}: {name:?} is not a cache name: {e}")))?;
    settings.caches.iter().find(|c| c.name == parsed).ok_or_else(|| {
        let known: Vec<&str> = settings.caches.iter().map(|c| c.name.as_str()).collect();
        Fatal::new(USAGE, format!("{command}: cache {name:?} is not configured (configured: {})", known.join(", ")))
    })
}

/// Logs of an offline command go to standard error, from `warn` up (`RUST_LOG` wins),
/// so that standard output carries only the command's report.
fn init_logs() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Takes the lock, boots the actors, syncs from Postgres when enabled, runs `work`,
/// then drains the retry queue (bounded by `shutdown.timeout`): boot → work → drain,
/// through the same [`Runtime`] as the daemon.
pub(crate) fn run_offline<F, Fut>(settings: &Settings, work: F) -> Result<(), Fatal>
where
    F: FnOnce(Offline) -> Fut,
    Fut: Future<Output = Result<(), Fatal>>,
{
    init_logs();
    let _lock = DataDirLock::acquire(&settings.data_dir)?;
    crate::owner::claim(&settings.data_dir, &settings.project)?;
    let config = wiring::system_config(settings)?;
    actix_rt::System::new().block_on(async move {
        let mut runtime = Runtime::boot(&config, Arc::new(Metrics::new()))?;
        let started = runtime.startup_offline().await?;
        let offline = Offline {
            saver: runtime.saver().clone(),
            postgres_enabled: runtime.postgres_store().is_some(),
            postgres_synced: started.sync.synced(),
        };
        let outcome = work(offline).await;
        if runtime.writes_behind() {
            runtime.drain(Instant::now() + settings.shutdown.timeout, &|_, _| {}).await;
            let left = runtime.pending_saves();
            if left > 0 {
                eprintln!(
                    "note: {left} cache(s) not yet in Postgres; they stay queued in the data directory and the daemon sends them at its next start"
                );
            }
        }
        if let Some(gave_up) = runtime.gave_up().await {
            return Err(Fatal::new(SOFTWARE, format!("supervisor gave up: {gave_up}")));
        }
        outcome
    })
}
