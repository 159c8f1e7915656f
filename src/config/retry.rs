//! `[retry]`, the one place of the config layer that knows its keys: the file's form,
//! its checks, what `check-config` prints, what a reload compares and how it treats
//! each key. The values and their defaults are the retry queue's own [`RetryPolicy`].

use serde::{Deserialize, Serialize};

use super::durations::Dur;
use super::{BackoffPolicy, ConfigError, RetryPolicy};
use crate::reload::table::Reload::{self, Applied};

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRetry {
    enabled: bool,
    initial_interval: Dur,
    max_interval: Dur,
    multiplier: f64,
    max_attempts: u32,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self::from(&RetryPolicy::default())
    }
}

impl From<&RetryPolicy> for RawRetry {
    fn from(p: &RetryPolicy) -> Self {
        let RetryPolicy {
            enabled,
            backoff: BackoffPolicy { initial_interval, max_interval, multiplier },
            max_attempts,
        } = *p;
        Self {
            enabled,
            initial_interval: Dur(initial_interval),
            max_interval: Dur(max_interval),
            multiplier,
            max_attempts,
        }
    }
}

impl RawRetry {
    /// `initial_interval` never more than `max_interval`, `multiplier` at least 1.0 (so
    /// intervals never shrink).
    pub(crate) fn check(self) -> Result<RetryPolicy, ConfigError> {
        // NaN is not finite, so it is refused too.
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ConfigError::new(
                "retry.multiplier",
                format!("must be a finite number of at least 1.0, got {}", self.multiplier),
            ));
        }
        if self.initial_interval.0 > self.max_interval.0 {
            return Err(ConfigError::new("retry.initial_interval", "must not be longer than retry.max_interval"));
        }
        Ok(RetryPolicy {
            enabled: self.enabled,
            backoff: BackoffPolicy {
                initial_interval: self.initial_interval.0,
                max_interval: self.max_interval.0,
                multiplier: self.multiplier,
            },
            max_attempts: self.max_attempts,
        })
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(p: &RetryPolicy) -> [(&'static str, String); 5] {
    let RetryPolicy { enabled, backoff: BackoffPolicy { initial_interval, max_interval, multiplier }, max_attempts } =
        p;
    [
        ("retry.enabled", format!("{enabled:?}")),
        ("retry.initial_interval", format!("{initial_interval:?}")),
        ("retry.max_interval", format!("{max_interval:?}")),
        ("retry.multiplier", format!("{multiplier:?}")),
        ("retry.max_attempts", format!("{max_attempts:?}")),
    ]
}

const RETRY: &str = "the retry queue (pending saves restart their backoff)";

/// How a reload treats each key: all applied by the retry queue.
pub(crate) const RELOAD: &[(&str, Reload)] = &[
    ("retry.enabled", Applied(RETRY)),
    ("retry.initial_interval", Applied(RETRY)),
    ("retry.max_interval", Applied(RETRY)),
    ("retry.multiplier", Applied(RETRY)),
    ("retry.max_attempts", Applied(RETRY)),
];
