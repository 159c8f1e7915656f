//! Liveness as the health loop last judged it, shared by `/healthz` and systemd's
//! watchdog so that a container's HEALTHCHECK sees what the watchdog sees.
//!
//! The loop runs on the main thread with the memory tier, the store, the retry queue
//! and the refresher. If one of their handlers wedges that thread, the loop stops
//! recording; `/healthz`, served by the API's own worker threads, then notices that the
//! last verdict is too old.

use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_actors::supervisor::health::Unhealthy;

/// The health loop's latest verdict and when it was reached.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// Reference point for `last_check_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` of the latest verdict; 0 before the first.
    last_check_ms: AtomicU64,
    /// What was wrong at the latest verdict.
    problem: ArcSwapOption<String>,
    /// How often the loop judges.
    period: Duration,
}

impl Liveness {
    /// No verdict yet: healthy until the loop has run once (startup may take a while
    /// reading Postgres, and the loop starts with readiness).
    pub(crate) fn new(period: Duration) -> Self {
        Self { epoch: Instant::now(), last_check_ms: AtomicU64::new(0), problem: ArcSwapOption::empty(), period }
    }

    /// How often the health loop should judge.
    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Records a verdict of the supervisor's health probe.
    pub(crate) fn record(&self, verdict: &Result<(), Unhealthy>) {
        self.problem.store(verdict.as_ref().err().map(|why| Arc::new(why.to_string())));
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.last_check_ms.store(ms, Ordering::Relaxed);
    }

    /// `Err(why)` when the latest verdict found a problem, or when no verdict came for
    /// two periods (the loop's own thread is blocked).
    pub(crate) fn verdict(&self) -> Result<(), String> {
        self.verdict_at(self.epoch.elapsed())
    }

    fn verdict_at(&self, now: Duration) -> Result<(), String> {
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if last == 0 {
            return Ok(());
        }
        let since = now.saturating_sub(Duration::from_millis(last));
        if since > self.period * 2 {
            return Err(format!(
                "no health verdict for {:.1}s: an actor on the main thread is not answering",
                since.as_secs_f64()
            ));
        }
        match self.problem.load_full() {
            Some(problem) => Err(problem.as_ref().clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiercache_actors::supervisor::ActorId;

    #[test]
    fn healthy_before_the_first_verdict_and_after_a_good_one() {
        let l = Liveness::new(Duration::from_secs(1));
        assert_eq!(l.verdict(), Ok(()));
        l.record(&Ok(()));
        assert_eq!(l.verdict(), Ok(()));
    }

    #[test]
    fn a_problem_is_reported_until_a_good_verdict() {
        let l = Liveness::new(Duration::from_secs(1));
        l.record(&Err(Unhealthy::MailboxClosed(ActorId::Store)));
        assert_eq!(l.verdict(), Err("the store actor's mailbox is closed".into()));
        l.record(&Ok(()));
        assert_eq!(l.verdict(), Ok(()));
    }

    #[test]
    fn an_old_verdict_is_a_problem() {
        let l = Liveness::new(Duration::from_secs(1));
        l.record(&Ok(()));
        let recorded = Duration::from_millis(l.last_check_ms.load(Ordering::Relaxed));
        assert_eq!(l.verdict_at(recorded + Duration::from_millis(1900)), Ok(()));
        let stale = l.verdict_at(recorded + Duration::from_secs(3)).unwrap_err();
        assert!(stale.contains("no health verdict"), "{stale}");
    }
}
