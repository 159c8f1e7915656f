//! The one way to start work that no actor awaits: a detached task whose panic is
//! reported like an actor's instead of vanishing with the task.

use super::{guard_async, ActorId, FailureReporter};
use std::future::Future;

/// Spawns `work` on the current arbiter inside [`guard_async`]: a panic is logged,
/// reported as `actor`'s (counted in `tiercache_actor_restarts_total` and toward
/// `supervisor.max_restarts`) and ends the task. A task that must outlive a panic
/// (a loop) guards each round itself and is spawned with this for the rest.
/// Must run inside an actix `System`.
pub fn spawn_guarded(
    actor: ActorId,
    reporter: FailureReporter,
    work: impl Future<Output = ()> + 'static,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        let _ = guard_async(actor.label(), reporter, work).await;
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
}
