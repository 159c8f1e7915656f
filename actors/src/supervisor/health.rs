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
use crate::tiers::Tiers;
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

/// Whether `actor`'s mailbox is open; `None` when it does not run (no Postgres, no
/// source) or has no mailbox (the listener).
pub fn mailbox_open(tiers: &Tiers, actor: ActorId) -> Option<bool> {
    match actor {
        ActorId::Memory => Some(tiers.memory().connected()),
        ActorId::File => Some(tiers.files().connected()),
        ActorId::Store => tiers.store().map(|s| s.connected()),
        ActorId::Retry => tiers.queue().map(|q| q.connected()),
        ActorId::Refresher => tiers.refresher().map(|r| r.connected()),
        ActorId::Listener | ActorId::Retention | ActorId::Api => None,
    }
}

/// Judges every actor: the file tier must answer within `answer_within`, the others'
/// mailboxes must be open (see the module's documentation).
///
/// # Errors
/// The first problem found, the file tier's first.
pub async fn probe(tiers: &Tiers, answer_within: Duration) -> Result<(), Unhealthy> {
    match tokio::time::timeout(answer_within, tiers.files().list()).await {
        Err(_) => return Err(Unhealthy::FileTierSlow(answer_within)),
        Ok(Err(e)) => return Err(Unhealthy::FileTierFailed(e.to_string())),
        Ok(Ok(_)) => {}
    }
    for actor in ActorId::ALL {
        let judged_by_mailbox = match actor {
            ActorId::File | ActorId::Listener | ActorId::Retention | ActorId::Api => false,
            ActorId::Memory | ActorId::Store | ActorId::Retry | ActorId::Refresher => true,
        };
        if judged_by_mailbox && mailbox_open(tiers, actor) == Some(false) {
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
}
