//! `[retry]` as one value, from the configuration file to the queue: the config layer
//! fills it, `PostgresConfig` carries it, a reload hands it over whole ([`super::Retune`]).
//! Its defaults are the file's: declared here once.

use super::backoff::{Backoff, BackoffPolicy};
use std::time::Duration;

/// How saves that Postgres refused are retried in the background.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// `retry.enabled` (`BACKGROUND_RETRY`): false tries once and leaves failures on disk.
    pub enabled: bool,
    /// `retry.initial_interval`, `retry.max_interval`, `retry.multiplier`.
    pub backoff: BackoffPolicy,
    /// `retry.max_attempts`, for saves Postgres rejects for good.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// A fresh schedule of waits for one pending cache.
    pub(super) fn schedule(&self) -> Backoff {
        Backoff::new(&self.backoff)
    }

    /// Whether `other` waits as this does: if not, a reload restarts the pending
    /// caches' schedules.
    pub(super) fn same_waits(&self, other: &Self) -> bool {
        self.backoff == other.backoff
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            backoff: BackoffPolicy {
                initial_interval: Duration::from_millis(500),
                max_interval: Duration::from_secs(60),
                multiplier: 2.0,
            },
            max_attempts: 20,
        }
    }
}
