//! Supervision: panics in actor handlers become restarts, restarts are counted, and too
//! many within the window make the process give up (exit 70) so systemd restarts it.
//!
//! actix's own `Supervisor` restarts an actor only after `ctx.stop()`; a panicking
//! handler just closes the mailbox. So every handler runs inside [`guard`], which
//! catches the panic, reports it here and stops the actor; actix then calls
//! `restarting()` (where the actor rebuilds its state from disk) and keeps the address
//! and the queued messages. Work an actor starts asynchronously (a load, a fetch, a
//! write) runs inside [`guard_async`], which reports its panic the same way; the actor
//! then answers its waiters and stops itself. Work an actor runs in its own context
//! (`ctx.spawn`, `ctx.wait`) goes through [`GuardedContext`], which also stops it. Work
//! nobody awaits (the retention purge, the background startup sync, a pool's
//! reconnection) is started with [`spawn_guarded`], so its panic is counted instead of
//! ending the task unseen; work that belongs to no actor with [`spawn_unowned`].
//!
//! These are the only ways to start work: `clippy.toml` refuses `ctx.spawn`,
//! `ctx.wait`, `actix::spawn` and `tokio::spawn` everywhere else. The one exception is
//! a Postgres connection's driver (a `tokio_postgres::Connection` must be polled on a
//! task of its own; it holds no state of ours and ends with its connection).
//!
//! [`ActorId`] is the one list of the actors; [`health`] judges whether they answer.

mod actor_id;
mod async_guard;
mod guard;
pub mod health;
mod in_context;
mod restart_log;
mod spawn;

pub use actor_id::ActorId;
pub use async_guard::guard_async;
pub use guard::{guard, ActorPanicked, FailureReporter};
pub use in_context::GuardedContext;
pub use restart_log::{RestartLog, RestartPolicy};
pub use spawn::{spawn_guarded, spawn_unowned};

/// Whether the tokio runtime is still there. Tearing a runtime down drops its actors,
/// and a supervised actor stopped then may be started once more (an offline command
/// ending early); its `started` must not schedule timers: with no reactor left, that
/// panics.
pub fn runtime_alive() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

use crate::metrics::{ActorLabel, Metrics};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The supervisor gave up on an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("actor {actor} restarted more than {max} times within {window:?}")]
pub struct GaveUp {
    /// The actor that kept failing.
    pub actor: &'static str,
    /// The configured limit.
    pub max: u32,
    /// The configured window.
    pub window: std::time::Duration,
}

/// Receives failure reports from every actor and applies the restart policy.
pub struct Supervisor {
    rx: mpsc::UnboundedReceiver<&'static str>,
    log: RestartLog,
    metrics: Arc<Metrics>,
}

impl Supervisor {
    /// A supervisor and the reporter its actors send failures to.
    pub fn new(policy: RestartPolicy, metrics: Arc<Metrics>) -> (Self, FailureReporter) {
        let (tx, rx) = mpsc::unbounded_channel();
        // Every actor's series exists from the start, at 0, so rates and alerts work.
        for actor in ActorId::ALL {
            let _ = metrics.actor_restarts.get_or_create(&ActorLabel { actor: actor.label() });
        }
        (Self { rx, log: RestartLog::new(policy), metrics }, FailureReporter::new(tx))
    }

    /// Starts [`Self::run`] on the current arbiter: the supervisor is the one task that
    /// nothing supervises.
    #[allow(clippy::disallowed_methods)] // nothing above it to report to
    pub fn start(self) -> tokio::task::JoinHandle<Option<GaveUp>> {
        actix::spawn(self.run())
    }

    /// Runs until the restart limit is exceeded (returns why) or every reporter is gone.
    pub async fn run(mut self) -> Option<GaveUp> {
        while let Some(actor) = self.rx.recv().await {
            self.metrics.actor_restarts.get_or_create(&ActorLabel { actor }).inc();
            let count = self.log.record(actor, std::time::Instant::now());
            tracing::warn!(actor, restarts_in_window = count, "actor failed and was restarted");
            if let Some(gave_up) = self.log.exceeded(actor) {
                tracing::error!(actor, alert = true, error = %gave_up, "supervisor gives up");
                return Some(gave_up);
            }
        }
        None
    }
}
