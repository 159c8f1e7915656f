//! Whether the actors answer: the one verdict behind systemd's watchdog and `/healthz`.
//!
//! Each actor of [`ActorId::ALL`] is judged its own way:
//!
//! - the file tier runs on a thread of its own, so it must answer a `ListFiles` round
//!   trip (no failpoint, one map clone) in time. Its handlers run one at a time, so a
//!   wedged one (a blocked disk, the `file::read=sleep(..)` failpoint) holds the answer
//!   back;
//! - the memory tier, the store, the retry queue and the refresher run on the main
//!   thread, the caller's: a handler wedged there stops the caller itself, and one that
//!   failed for good leaves a closed mailbox. Asking them by message would add nothing
//!   (and a message through `memory::get` would trip that failpoint in tests);
//! - the listener has no mailbox and no liveness of its own: its sessions are restarted
//!   by their loop, and it stops on purpose behind a transaction pooler. It is judged
//!   by the restart limit only, so the probe skips it. So is the retention purge, a
//!   task whose passes go on after a panic, and so are the daemon's own tasks (the HTTP
//!   server, whose answers are their own probe, and the health loop, this probe's caller).
//!
//! Postgres being down is not a failed actor: a restart cannot fix it.

use super::ActorId;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why the actors are not healthy. Its text is what `/healthz`, `STATUS=` and the log say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    /// The file tier did not answer within the given time.
    #[error("the file tier did not answer within {0:?}")]
    FileTierSlow(Duration),
    /// The file tier answered with an error.
    #[error("the file tier failed: {0}")]
    FileTierFailed(String),
    /// The actor failed for good: its mailbox is closed.
    #[error("the {0} actor's mailbox is closed")]
    MailboxClosed(ActorId),
}

/// Whether one actor's mailbox is open.
type IsOpen = Arc<dyn Fn() -> bool + Send + Sync>;

/// The mailboxes of the running actors, each under its [`ActorId`]: all the probe needs
/// to know of them. Cheap to clone.
#[derive(Clone, Default)]
pub struct Mailboxes(Vec<(ActorId, IsOpen)>);

impl Mailboxes {
    /// Adds `actor`, whose mailbox is open while `is_open` says so.
    #[must_use]
    pub fn with(mut self, actor: ActorId, is_open: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.0.push((actor, Arc::new(is_open)));
        self
    }

    /// Whether `actor`'s mailbox is open; `None` when it does not run (no Postgres, no
    /// source) or has no mailbox (the listener).
    pub fn open(&self, actor: ActorId) -> Option<bool> {
        self.0.iter().find(|(id, _)| *id == actor).map(|(_, is_open)| is_open())
    }
}

impl fmt::Debug for Mailboxes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(id, _)| id)).finish()
    }
}

/// Judges every actor: `file_round_trip` (the file tier's answer to a `ListFiles`) must
/// come within `answer_within`, the others' mailboxes must be open (see the module's
/// documentation).
///
/// # Errors
/// The first problem found, the file tier's first.
pub async fn probe<T, E: fmt::Display>(
    file_round_trip: impl Future<Output = Result<T, E>>,
    mailboxes: &Mailboxes,
    answer_within: Duration,
) -> Result<(), Unhealthy> {
    match tokio::time::timeout(answer_within, file_round_trip).await {
        Err(_) => return Err(Unhealthy::FileTierSlow(answer_within)),
        Ok(Err(e)) => return Err(Unhealthy::FileTierFailed(e.to_string())),
        Ok(Ok(_)) => {}
    }
    for actor in ActorId::ALL {
        let judged_by_mailbox = match actor {
            ActorId::File | ActorId::Listener | ActorId::Retention | ActorId::Api => false,
            ActorId::Memory | ActorId::Store | ActorId::Retry | ActorId::Refresher => true,
        };
        if judged_by_mailbox && mailboxes.open(actor) == Some(false) {
            return Err(Unhealthy::MailboxClosed(actor));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(
            Unhealthy::FileTierSlow(Duration::from_millis(500)).to_string(),
            "the file tier did not answer within 500ms"
        );
        assert_eq!(Unhealthy::FileTierFailed("boom".into()).to_string(), "the file tier failed: boom");
        assert_eq!(Unhealthy::MailboxClosed(ActorId::Retry).to_string(), "the retry actor's mailbox is closed");
    }

    #[actix_rt::test]
    async fn the_first_closed_mailbox_is_the_verdict_and_absent_actors_pass() {
        let answered = || async { Ok::<_, String>(()) };
        let within = Duration::from_secs(1);
        let none = Mailboxes::default();
        assert_eq!(probe(answered(), &none, within).await, Ok(()));
        let closed =
            none.with(ActorId::Memory, || true).with(ActorId::Retry, || false).with(ActorId::Refresher, || false);
        assert_eq!(closed.open(ActorId::Store), None, "not running: no verdict");
        assert_eq!(probe(answered(), &closed, within).await, Err(Unhealthy::MailboxClosed(ActorId::Retry)));
        let failed = async { Err::<(), _>("mailbox closed") };
        assert_eq!(probe(failed, &closed, within).await, Err(Unhealthy::FileTierFailed("mailbox closed".into())));
    }
}
