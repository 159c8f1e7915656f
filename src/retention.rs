//! The retention purge in the daemon: how often it runs, and the configuration it
//! sees (replaced on every reload).

use crate::config::Settings;
use crate::exit::{Fatal, CONFIG};
use crate::wiring;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tiercache_actors::retention::{self, Configured};
use tiercache_actors::tiers::Tiers;
use tokio::sync::watch;

/// Overrides the hour between two passes (humantime, e.g. `"2s"`); meant for tests.
pub const INTERVAL_VAR: &str = "TIERCACHE_RETENTION_INTERVAL";

/// The time between two passes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The interval from [`INTERVAL_VAR`], else [`DEFAULT_INTERVAL`].
///
/// # Errors
/// Exit 78 naming the variable when it is not a positive duration.
pub fn interval(env: &dyn Fn(&str) -> Option<String>) -> Result<Duration, Fatal> {
    let Some(text) = env(INTERVAL_VAR) else { return Ok(DEFAULT_INTERVAL) };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(Fatal::new(CONFIG, format!("config error: {INTERVAL_VAR}: invalid duration {text:?}"))),
    }
}

fn configured(settings: &Settings) -> Configured {
    Arc::new(wiring::retention_days(settings))
}

/// Feeds the running purge the configuration in force.
pub struct RetentionHandle {
    tx: watch::Sender<Configured>,
    /// The running `data_dir` (a new one takes a restart).
    data_dir: PathBuf,
}

impl RetentionHandle {
    /// Starts the purge: a pass now, after every reload, and one every `every`.
    pub fn start(tiers: Tiers, settings: &Settings, every: Duration) -> Self {
        let (tx, rx) = watch::channel(configured(settings));
        actix_rt::spawn(retention::run(tiers, settings.data_dir.clone(), rx, every));
        Self { tx, data_dir: settings.data_dir.clone() }
    }

    /// SIGHUP: records the new retentions and runs a pass on `settings` (caches added
    /// or removed).
    pub fn reconfigure(&self, settings: &Settings) {
        let configured = configured(settings);
        retention::remember(&self.data_dir, &configured);
        self.tx.send_replace(configured);
    }
}
