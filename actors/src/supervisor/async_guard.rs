//! The panic boundary for asynchronous work an actor started (a cold read's load, an
//! upstream fetch, a write to Postgres, a statement): the handler has returned by the
//! time it runs, so the synchronous [`guard`](super::guard) cannot see its panic.

use super::guard::{panic_message, ActorPanicked, FailureReporter};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Runs `work`; if it panics, logs and reports the failure to the supervisor (so it is
/// counted and limited like a handler's panic) and returns [`ActorPanicked`]. The
/// caller then answers whoever waits on the work and stops the actor, so that actix
/// restarts it with state rebuilt from disk.
///
/// # Errors
/// [`ActorPanicked`] when `work` panicked.
pub async fn guard_async<F: Future>(
    actor: &'static str,
    reporter: FailureReporter,
    work: F,
) -> Result<F::Output, ActorPanicked> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(output) => Ok(output),
        Err(panic) => {
            tracing::error!(actor, error = %panic_message(&*panic), "asynchronous work of the actor panicked; restarting it");
            reporter.report(actor);
            Err(ActorPanicked(actor))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn a_panic_in_the_future_is_reported_and_returned() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = FailureReporter::new(tx);
        let answer: Result<(), _> = guard_async("memory", reporter, async { panic!("boom") }).await;
        assert_eq!(answer, Err(ActorPanicked("memory")));
        assert_eq!(rx.try_recv().ok(), Some("memory"));
    }

    #[tokio::test]
    async fn a_future_that_completes_reports_nothing() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = FailureReporter::new(tx);
        assert_eq!(guard_async("store", reporter, async { 7 }).await, Ok(7));
        assert!(rx.try_recv().is_err());
    }
}
