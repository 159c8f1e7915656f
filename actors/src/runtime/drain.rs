//! The drain at shutdown (and at the end of an offline command): send what the retry
//! queue holds until it is empty, blocked, or the deadline passes.

use crate::retry_queue::RetryQueueHandle;
use std::time::Duration;
use tokio::time::Instant;

/// Told, at most once a second while saves keep leaving the queue, how much longer the
/// drain may take and a status line (the daemon passes both to systemd as
/// `EXTEND_TIMEOUT_USEC` and `STATUS=`).
pub type DrainProgress<'a> = &'a dyn Fn(Duration, &str);

/// Sends what `queue` holds until it is empty or `deadline` passes; what is left stays
/// on disk for the next start.
pub(super) async fn drain(queue: &RetryQueueHandle, deadline: Instant, progress: DrainProgress<'_>) {
    let started = Instant::now();
    let pending = queue.pending_count();
    if pending == 0 {
        return;
    }
    let up_to = deadline.saturating_duration_since(started);
    tracing::info!(
        pending,
        timeout_ms = up_to.as_millis() as u64,
        "draining {pending} saves to Postgres, up to {}; signal again to stop now",
        humantime::format_duration(Duration::from_secs(up_to.as_secs().max(1)))
    );
    queue.drain();
    let mut extension = TimeoutExtension::default();
    loop {
        let left = queue.pending_count();
        if left == 0 {
            tracing::info!(duration_ms = started.elapsed().as_millis() as u64, "retry queue drained");
            return;
        }
        // Nothing can succeed before an operator acts (an unregistered project): no wait.
        if let Some(why) = queue.blocked() {
            tracing::warn!(pending = left, error = %why, "pending saves cannot reach Postgres now; they stay on disk for the next start");
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(pending = left, "shutdown timeout: pending saves stay on disk for the next start");
            return;
        }
        extension.ask_while_moving(left, deadline, progress);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks for more time while saves keep leaving the queue, at most once a second.
#[derive(Default)]
struct TimeoutExtension {
    least_left: Option<usize>,
    asked_at: Option<Instant>,
}

impl TimeoutExtension {
    fn ask_while_moving(&mut self, left: usize, deadline: Instant, progress: DrainProgress<'_>) {
        let now = Instant::now();
        let moving = self.least_left.is_none_or(|least| left < least);
        if moving && self.asked_at.is_none_or(|t| now - t >= Duration::from_secs(1)) {
            let more = deadline.saturating_duration_since(now) + Duration::from_secs(5);
            progress(more, &format!("stopping: draining {left} pending saves to Postgres"));
            self.asked_at = Some(now);
        }
        self.least_left = Some(self.least_left.map_or(left, |least| least.min(left)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn more_time_is_asked_while_saves_leave_the_queue_at_most_once_a_second() {
        let asked = RefCell::new(Vec::new());
        let progress = |more: Duration, status: &str| asked.borrow_mut().push((more, status.to_owned()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut extension = TimeoutExtension::default();
        extension.ask_while_moving(5, deadline, &progress);
        // Moving, but asked less than a second ago; then not moving at all.
        extension.ask_while_moving(4, deadline, &progress);
        extension.ask_while_moving(4, deadline, &progress);
        let asked = asked.into_inner();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0].1, "stopping: draining 5 pending saves to Postgres");
        // Up to the deadline, plus five seconds of margin.
        assert!(asked[0].0 > Duration::from_secs(14) && asked[0].0 <= Duration::from_secs(15), "{asked:?}");
    }

    #[test]
    fn a_queue_that_does_not_move_asks_for_nothing_more() {
        let asked = RefCell::new(0);
        let progress = |_: Duration, _: &str| *asked.borrow_mut() += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut extension =
            TimeoutExtension { least_left: Some(3), asked_at: Some(Instant::now() - Duration::from_secs(5)) };
        extension.ask_while_moving(3, deadline, &progress);
        extension.ask_while_moving(7, deadline, &progress);
        assert_eq!(*asked.borrow(), 0);
        extension.ask_while_moving(2, deadline, &progress);
        assert_eq!(*asked.borrow(), 1);
    }
}
