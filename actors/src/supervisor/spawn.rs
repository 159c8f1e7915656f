//! The one way to start work that no actor awaits: a detached task whose panic is
//! reported like an actor's instead of vanishing with the task.

use super::guard::panic_message;
use super::{guard_async, ActorId, FailureReporter};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Spawns `work` on the current arbiter inside [`guard_async`]: a panic is logged,
/// reported as `actor`'s (counted in `tiercache_actor_restarts_total` and toward
/// `supervisor.max_restarts`) and ends the task. A task that must outlive a panic
/// (a loop) guards each round itself and is spawned with this for the rest.
/// Must run inside an actix `System`.
#[allow(clippy::disallowed_methods)] // the guarded form itself
pub fn spawn_guarded(
    actor: ActorId,
    reporter: FailureReporter,
    work: impl Future<Output = ()> + 'static,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        let _ = guard_async(actor.label(), reporter, work).await;
    })
}

/// Spawns `work` that belongs to no actor and that nothing restarts (a background look
/// at a file a request asked about): a panic is logged as an alert and ends the task,
/// which the next request starts again. Must run inside an actix `System`.
#[allow(clippy::disallowed_methods)] // the guarded form itself
pub fn spawn_unowned(what: &'static str, work: impl Future<Output = ()> + 'static) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
            tracing::error!(task = what, alert = true, error = %panic_message(&*panic), "background task panicked");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[actix_rt::test]
    async fn a_panicking_task_is_reported_as_its_actor() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = FailureReporter::new(tx);
        let task = spawn_guarded(ActorId::Retention, reporter, async { panic!("boom") });
        assert!(task.await.is_ok(), "the panic is caught, not propagated");
        assert_eq!(rx.try_recv().ok(), Some("retention"));
    }

    #[actix_rt::test]
    async fn a_panicking_unowned_task_ends_without_propagating() {
        assert!(spawn_unowned("test", async { panic!("boom") }).await.is_ok());
    }
}
