//! How often the daemon's retention purge runs (the purge itself, and the configuration
//! it sees, are the runtime's).

use crate::exit::{Fatal, CONFIG};
use std::time::Duration;

/// Overrides the hour between two passes (humantime, e.g. `"2s"`); meant for tests.
pub(crate) const INTERVAL_VAR: &str = "TIERCACHE_RETENTION_INTERVAL";

/// The time between two passes.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The interval from [`INTERVAL_VAR`], else [`DEFAULT_INTERVAL`].
///
/// # Errors
/// Exit 78 naming the variable when it is not a positive duration.
pub(crate) fn interval(env: &dyn Fn(&str) -> Option<String>) -> Result<Duration, Fatal> {
    let Some(text) = env(INTERVAL_VAR) else { return Ok(DEFAULT_INTERVAL) };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => {
            Err(Fatal::new(CONFIG, format!("config error: {INTERVAL_VAR}: {}", crate::config::invalid_duration(&text))))
        }
    }
}
