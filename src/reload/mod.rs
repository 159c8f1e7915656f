//! SIGHUP: what changed between the running configuration and the new one, and for
//! each changed key whether it is applied at once or needs a restart ([`table`]).
//! Nothing is silently ignored: every changed key is named in a log line.

mod apply;
pub(crate) mod flatten;
pub(crate) mod table;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reference_tests;

pub(crate) use apply::{reload, Targets};

use crate::config::Settings;
use table::Reload;

/// The keys that differ, sorted into applied and needing a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Changed keys applied by this reload (`caches[NAME].KEY` for a cache's keys).
    pub applied: Vec<String>,
    /// Changed keys that take effect at the next restart.
    pub needs_restart: Vec<String>,
}

/// The table's spelling of a flattened key: `caches[strava].source.url` → `caches.source.url`.
pub(crate) fn table_key(key: &str) -> String {
    match key.strip_prefix("caches[").and_then(|rest| rest.split_once("].")) {
        Some((_, field)) => format!("caches.{field}"),
        None => key.to_owned(),
    }
}

/// Compares `old` with `new` key by key.
pub(crate) fn diff(old: &Settings, new: &Settings) -> Changes {
    let (before, after) = (flatten::flatten(old), flatten::flatten(new));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Changes::default();
    for key in keys {
        let (was, is) = (before.get(key), after.get(key));
        if was == is {
            continue;
        }
        let restart = match table::rule(&table_key(key)) {
            Some(Reload::Applied(_)) => false,
            Some(Reload::AppliedUnlessToggled(_)) => is_set(was) != is_set(is),
            Some(Reload::Restart) | None => true,
        };
        if restart {
            changes.needs_restart.push(key.clone());
        } else {
            changes.applied.push(key.clone());
        }
    }
    changes
}

/// Whether a flattened optional value is set (`Some(..)`).
fn is_set(value: Option<&String>) -> bool {
    value.is_some_and(|v| v.starts_with("Some("))
}

/// One line for what is applied, one (a warning) for what needs a restart.
pub(crate) fn log(changes: &Changes) {
    if !changes.applied.is_empty() {
        tracing::info!(keys = %crate::telemetry::list(&changes.applied), "configuration change applied");
    }
    if !changes.needs_restart.is_empty() {
        tracing::warn!(keys = %crate::telemetry::list(&changes.needs_restart), "configuration change needs a restart");
    }
}
