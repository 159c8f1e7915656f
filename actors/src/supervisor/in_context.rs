//! The guarded forms of an actor's own `ctx.spawn` and `ctx.wait`: work that runs in the
//! actor's context after its handler returned (a fetch's ending, a reconciliation read
//! back from the file tier), where the handler's [`guard`](super::guard) cannot see a
//! panic. clippy refuses the unguarded forms outside this module (`clippy.toml`).

use super::guard::{panic_message, FailureReporter};
use actix::{Actor, ActorContext, ActorFuture, AsyncContext, Context, SpawnHandle};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{self, Poll};

/// `ctx.spawn` and `ctx.wait` whose work, if it panics (in its future or in the closure
/// that applies its result to the actor), is logged, reported to the supervisor as
/// `actor`'s failure and stops the actor, so that actix restarts it with state rebuilt
/// from disk, exactly as a handler's panic does.
pub trait GuardedContext<A: Actor> {
    /// `ctx.spawn`, guarded: runs `work` beside the actor's messages.
    fn spawn_guarded<F>(&mut self, actor: &'static str, reporter: &FailureReporter, work: F) -> SpawnHandle
    where
        F: ActorFuture<A, Output = ()> + 'static;

    /// `ctx.wait`, guarded: runs `work` before the actor handles any other message.
    fn wait_guarded<F>(&mut self, actor: &'static str, reporter: &FailureReporter, work: F)
    where
        F: ActorFuture<A, Output = ()> + 'static;
}

impl<A: Actor<Context = Context<A>>> GuardedContext<A> for Context<A> {
    #[allow(clippy::disallowed_methods)] // the guarded form itself
    fn spawn_guarded<F>(&mut self, actor: &'static str, reporter: &FailureReporter, work: F) -> SpawnHandle
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.spawn(Guarded { work: Box::pin(work), actor, reporter: reporter.clone() })
    }

    #[allow(clippy::disallowed_methods)] // the guarded form itself
    fn wait_guarded<F>(&mut self, actor: &'static str, reporter: &FailureReporter, work: F)
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.wait(Guarded { work: Box::pin(work), actor, reporter: reporter.clone() });
    }
}

/// `work`, with every poll inside the panic boundary.
struct Guarded<F> {
    work: Pin<Box<F>>,
    actor: &'static str,
    reporter: FailureReporter,
}

impl<A, F> ActorFuture<A> for Guarded<F>
where
    A: Actor,
    A::Context: ActorContext,
    F: ActorFuture<A, Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, act: &mut A, ctx: &mut A::Context, task: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let work = &mut this.work;
        match catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(act, ctx, task))) {
            Ok(poll) => poll,
            Err(panic) => {
                let actor = this.actor;
                tracing::error!(actor, error = %panic_message(&*panic), "work of the actor panicked; restarting it");
                this.reporter.report(actor);
                ctx.stop();
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{ActorFutureExt, Handler, Message, WrapFuture};
    use tokio::sync::{mpsc, oneshot};

    /// An actor whose spawned work panics when told to, and which says when it stops.
    struct Probe {
        reporter: FailureReporter,
        stopped: Option<oneshot::Sender<()>>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;

        fn stopped(&mut self, _ctx: &mut Self::Context) {
            if let Some(tx) = self.stopped.take() {
                let _ = tx.send(());
            }
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Work {
        wait: bool,
        panic_in_future: bool,
    }

    impl Handler<Work> for Probe {
        type Result = ();

        fn handle(&mut self, msg: Work, ctx: &mut Context<Self>) {
            let in_future = msg.panic_in_future;
            let work = async move { assert!(!in_future, "boom in the future") }
                .into_actor(self)
                .map(move |(), _, _| assert!(in_future, "boom in the closure"));
            let reporter = self.reporter.clone();
            if msg.wait {
                ctx.wait_guarded("memory", &reporter, work);
            } else {
                ctx.spawn_guarded("memory", &reporter, work);
            }
        }
    }

    async fn panics_are_reported_and_stop_the_actor(wait: bool, panic_in_future: bool) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stopped_tx, stopped) = oneshot::channel();
        let probe = Probe { reporter: FailureReporter::new(tx), stopped: Some(stopped_tx) }.start();
        probe.send(Work { wait, panic_in_future }).await.unwrap();
        stopped.await.expect("the actor stopped");
        assert_eq!(rx.recv().await, Some("memory"), "wait {wait}, in the future {panic_in_future}");
    }

    #[actix_rt::test]
    async fn a_panic_in_spawned_or_awaited_work_is_reported_and_stops_the_actor() {
        for wait in [false, true] {
            for panic_in_future in [false, true] {
                panics_are_reported_and_stop_the_actor(wait, panic_in_future).await;
            }
        }
    }
}
