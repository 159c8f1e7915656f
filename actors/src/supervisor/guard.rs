//! The panic boundary every actor handler runs inside.

use actix::{ActorContext, AsyncContext};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::sync::mpsc;

/// The handler panicked; the actor is being restarted. The caller may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} actor failed and is restarting")]
pub struct ActorPanicked(pub &'static str);

/// Where actors report their failures; cloned into each actor.
#[derive(Clone, Debug)]
pub struct FailureReporter(mpsc::UnboundedSender<&'static str>);

impl FailureReporter {
    pub(super) fn new(tx: mpsc::UnboundedSender<&'static str>) -> Self {
        Self(tx)
    }

    /// A reporter whose reports go nowhere, for tests of single actors.
    pub fn detached() -> Self {
        let (tx, _rx) = mpsc::unbounded_channel();
        Self(tx)
    }

    /// Tells the supervisor that `actor` failed.
    pub fn report(&self, actor: &'static str) {
        // A closed channel means the supervisor is shutting down: nothing to count.
        let _ = self.0.send(actor);
    }
}

/// The text a panic was raised with.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `f`; if it panics, reports the failure and stops the actor so that actix's
/// `Supervisor` restarts it (`restarting()` rebuilds its state).
///
/// # Errors
/// [`ActorPanicked`] when `f` panicked.
pub fn guard<A, C, R>(
    actor: &'static str,
    reporter: &FailureReporter,
    ctx: &mut C,
    f: impl FnOnce() -> R,
) -> Result<R, ActorPanicked>
where
    A: actix::Actor<Context = C>,
    C: ActorContext + AsyncContext<A>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(panic) => {
            tracing::error!(actor, error = %panic_message(&*panic), "actor handler panicked; restarting it");
            reporter.report(actor);
            ctx.stop();
            Err(ActorPanicked(actor))
        }
    }
}
