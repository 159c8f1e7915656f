//! `[refresh]`, the one place of the config layer that knows its keys: the type the
//! daemon passes on (`wiring` hands the refresher its part, the API `max_stale`), its
//! defaults, the file's form, what `check-config` prints, what a reload compares and how
//! it treats each key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durations::{Dur, OptDur};
use crate::reload::table::Reload::{self, Applied};

/// `[refresh]`.
#[derive(Debug, Clone)]
pub(crate) struct RefreshSettings {
    pub emergency: bool,
    pub fetch_timeout: Duration,
    /// `None`: serve stale data however old.
    pub max_stale: Option<Duration>,
    pub jitter: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self { emergency: true, fetch_timeout: Duration::from_secs(60), max_stale: None, jitter: Duration::ZERO }
    }
}

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRefresh {
    emergency: bool,
    fetch_timeout: Dur,
    max_stale: OptDur,
    jitter: Dur,
}

impl Default for RawRefresh {
    fn default() -> Self {
        Self::from(&RefreshSettings::default())
    }
}

impl From<&RefreshSettings> for RawRefresh {
    fn from(s: &RefreshSettings) -> Self {
        let RefreshSettings { emergency, fetch_timeout, max_stale, jitter } = *s;
        Self { emergency, fetch_timeout: Dur(fetch_timeout), max_stale: OptDur(max_stale), jitter: Dur(jitter) }
    }
}

impl From<RawRefresh> for RefreshSettings {
    /// Nothing to check beyond the types.
    fn from(raw: RawRefresh) -> Self {
        let RawRefresh { emergency, fetch_timeout, max_stale, jitter } = raw;
        Self { emergency, fetch_timeout: fetch_timeout.0, max_stale: max_stale.0, jitter: jitter.0 }
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(s: &RefreshSettings) -> [(&'static str, String); 4] {
    let RefreshSettings { emergency, fetch_timeout, max_stale, jitter } = s;
    [
        ("refresh.emergency", format!("{emergency:?}")),
        ("refresh.fetch_timeout", format!("{fetch_timeout:?}")),
        ("refresh.max_stale", format!("{max_stale:?}")),
        ("refresh.jitter", format!("{jitter:?}")),
    ]
}

/// How a reload treats each key.
pub(crate) const RELOAD: &[(&str, Reload)] = &[
    ("refresh.emergency", Applied("reads of a cache no tier holds")),
    ("refresh.fetch_timeout", Applied("the refresher (fetches started from now on)")),
    ("refresh.max_stale", Applied(crate::reload::table::API_POLICY)),
    ("refresh.jitter", Applied("the refresher (due times drawn again)")),
];
