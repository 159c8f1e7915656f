//! `[shutdown]`, the one place of the config layer that knows its keys: the type the
//! daemon reads when it stops, its defaults, the file's form, what `check-config`
//! prints, what a reload compares and how it treats each key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durations::Dur;
use crate::reload::table::Reload::{self, Applied};

/// `[shutdown]`.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSettings {
    pub graceful: bool,
    pub timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { graceful: true, timeout: Duration::from_secs(30) }
    }
}

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawShutdown {
    graceful: bool,
    timeout: Dur,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self::from(&ShutdownSettings::default())
    }
}

impl From<&ShutdownSettings> for RawShutdown {
    fn from(s: &ShutdownSettings) -> Self {
        let ShutdownSettings { graceful, timeout } = *s;
        Self { graceful, timeout: Dur(timeout) }
    }
}

impl From<RawShutdown> for ShutdownSettings {
    /// Nothing to check beyond the types.
    fn from(raw: RawShutdown) -> Self {
        let RawShutdown { graceful, timeout } = raw;
        Self { graceful, timeout: timeout.0 }
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(s: &ShutdownSettings) -> [(&'static str, String); 2] {
    let ShutdownSettings { graceful, timeout } = s;
    [("shutdown.graceful", format!("{graceful:?}")), ("shutdown.timeout", format!("{timeout:?}"))]
}

/// How a reload treats each key: read when the daemon stops.
pub(crate) const RELOAD: &[(&str, Reload)] =
    &[("shutdown.graceful", Applied("the next shutdown")), ("shutdown.timeout", Applied("the next shutdown"))];
