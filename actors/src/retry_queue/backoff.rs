//! The one place that knows the `backoff` crate (flagged unmaintained, RUSTSEC-2025-0012):
//! moving to `backon` touches this file only.

use backoff::backoff::Backoff as _;
use backoff::exponential::ExponentialBackoff;
use backoff::SystemClock;
use std::time::Duration;

/// `[retry]` intervals: exponential with jitter, for ever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// First wait.
    pub initial_interval: Duration,
    /// Longest wait.
    pub max_interval: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
}

/// The waits between attempts of one cache.
pub struct Backoff(ExponentialBackoff<SystemClock>);

impl Backoff {
    /// A fresh schedule under `policy`.
    pub fn new(policy: &BackoffPolicy) -> Self {
        let inner = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(policy.initial_interval)
            .with_max_interval(policy.max_interval)
            .with_multiplier(policy.multiplier)
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(None)
            .build();
        Self(inner)
    }

    /// The next wait; never ends (transient errors are retried for ever).
    pub fn next_wait(&mut self) -> Duration {
        self.0.next_backoff().unwrap_or(self.0.max_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_up_to_the_cap() {
        let policy = BackoffPolicy {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(1),
            multiplier: 2.0,
        };
        let mut b = Backoff::new(&policy);
        let first = b.next_wait();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150), "{first:?}");
        for _ in 0..50 {
            assert!(b.next_wait() <= Duration::from_millis(1500));
        }
    }
}
