//! `[supervisor]`, the one place of the config layer that knows its keys: the file's
//! form, its checks, what `check-config` prints, what a reload compares and how it
//! treats each key. The values and their defaults are the supervisor's own
//! [`RestartPolicy`].

use serde::{Deserialize, Serialize};

use super::durations::Dur;
use super::{ConfigError, RestartPolicy};
use crate::reload::table::Reload::{self, Restart};

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSupervisor {
    max_restarts: u32,
    restart_window: Dur,
}

impl Default for RawSupervisor {
    fn default() -> Self {
        Self::from(&RestartPolicy::default())
    }
}

impl From<&RestartPolicy> for RawSupervisor {
    fn from(p: &RestartPolicy) -> Self {
        let RestartPolicy { max_restarts, window } = *p;
        Self { max_restarts, restart_window: Dur(window) }
    }
}

impl RawSupervisor {
    /// At least 1 restart, a window above 0s.
    pub(crate) fn check(self) -> Result<RestartPolicy, ConfigError> {
        let Self { max_restarts, restart_window } = self;
        if max_restarts == 0 {
            return Err(ConfigError::new(
                "supervisor.max_restarts",
                "must be at least 1 (0 would exit at an actor's first failure)",
            ));
        }
        if restart_window.0.is_zero() {
            return Err(ConfigError::new("supervisor.restart_window", "must be more than 0s"));
        }
        Ok(RestartPolicy { max_restarts, window: restart_window.0 })
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(p: &RestartPolicy) -> [(&'static str, String); 2] {
    let RestartPolicy { max_restarts, window } = p;
    [("supervisor.max_restarts", format!("{max_restarts:?}")), ("supervisor.restart_window", format!("{window:?}"))]
}

/// How a reload treats each key: the supervisor is built once, at start.
pub(crate) const RELOAD: &[(&str, Reload)] =
    &[("supervisor.max_restarts", Restart), ("supervisor.restart_window", Restart)];
