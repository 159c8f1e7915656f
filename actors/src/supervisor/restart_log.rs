//! Restart intensity: how many restarts of one actor fit in a sliding window.

use super::GaveUp;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// `max_restarts` within `window`; one more and the supervisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts of one actor allowed within the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { max_restarts: 5, window: Duration::from_secs(60) }
    }
}

/// Restart times per actor, pruned to the window. Pure, so tests need no runtime.
#[derive(Debug)]
pub struct RestartLog {
    policy: RestartPolicy,
    times: HashMap<&'static str, VecDeque<Instant>>,
}

impl RestartLog {
    /// An empty log under `policy`.
    pub fn new(policy: RestartPolicy) -> Self {
        Self { policy, times: HashMap::new() }
    }

    /// Records a restart of `actor` at `now`; returns the restarts within the window.
    pub fn record(&mut self, actor: &'static str, now: Instant) -> usize {
        let q = self.times.entry(actor).or_default();
        q.push_back(now);
        while q.front().is_some_and(|t| now.duration_since(*t) > self.policy.window) {
            q.pop_front();
        }
        q.len()
    }

    /// Whether `actor` has had more restarts within the window than allowed.
    pub fn exceeded(&self, actor: &'static str) -> Option<GaveUp> {
        let n = self.times.get(actor).map_or(0, VecDeque::len);
        (n > self.policy.max_restarts as usize).then_some(GaveUp {
            actor,
            max: self.policy.max_restarts,
            window: self.policy.window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_past_the_limit_within_the_window() {
        let mut log = RestartLog::new(RestartPolicy { max_restarts: 2, window: Duration::from_secs(10) });
        let t0 = Instant::now();
        log.record("file", t0);
        log.record("file", t0 + Duration::from_secs(1));
        assert!(log.exceeded("file").is_none());
        log.record("memory", t0 + Duration::from_secs(2));
        assert!(log.exceeded("file").is_none());
        log.record("file", t0 + Duration::from_secs(3));
        assert_eq!(log.exceeded("file").map(|g| g.actor), Some("file"));
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let mut log = RestartLog::new(RestartPolicy { max_restarts: 1, window: Duration::from_secs(10) });
        let t0 = Instant::now();
        log.record("file", t0);
        assert_eq!(log.record("file", t0 + Duration::from_secs(11)), 1);
        assert!(log.exceeded("file").is_none());
    }
}
