//! A typed handle to the retry queue. Its messages are fire-and-forget: the durable
//! record is the envelope on disk, so a lost message is repaired by the next rebuild.

use super::messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};
use super::{QueueStatus, QueueView, RetryQueue};
use crate::domain::CacheName;
use actix::{Addr, MailboxError};
use std::collections::BTreeSet;

/// Cheap to clone.
#[derive(Clone)]
pub struct RetryQueueHandle {
    addr: Addr<RetryQueue>,
    view: QueueView,
}

impl RetryQueueHandle {
    /// Wraps the supervised address and its published status.
    pub fn new(addr: Addr<RetryQueue>, view: QueueView) -> Self {
        Self { addr, view }
    }

    /// See [`EnqueueWrite`].
    pub fn enqueue_write(&self, name: CacheName, version: u64) {
        self.addr.do_send(EnqueueWrite { name, version });
    }

    /// See [`EnqueueDelete`].
    pub fn enqueue_delete(&self, name: CacheName) {
        self.addr.do_send(EnqueueDelete { name });
    }

    /// See [`MarkSynced`].
    pub fn mark_synced(&self, name: CacheName, version: u64) {
        self.addr.do_send(MarkSynced { name, version });
    }

    /// See [`Reconcile`].
    pub fn reconcile(&self) {
        self.addr.do_send(Reconcile);
    }

    /// See [`PendingCaches`].
    ///
    /// # Errors
    /// When the actor's mailbox is closed.
    pub async fn pending(&self) -> Result<BTreeSet<CacheName>, MailboxError> {
        self.addr.send(PendingCaches).await
    }

    /// See [`Retune`].
    pub fn retune(&self, settings: Retune) {
        self.addr.do_send(settings);
    }

    /// See [`Drain`].
    pub fn drain(&self) {
        self.addr.do_send(Drain);
    }

    /// How many caches have a save or a delete not yet in Postgres (no message).
    pub fn pending_count(&self) -> usize {
        self.view.snapshot().pending.len()
    }

    /// Whether `name` has a save or a delete not yet in Postgres (no message).
    pub fn is_pending(&self, name: &CacheName) -> bool {
        self.view.snapshot().pending.contains_key(name)
    }

    /// Why nothing can reach Postgres until an operator acts, as the last attempt found
    /// (see [`super::QueueSnapshot::blocked`]); `None` otherwise.
    pub fn blocked(&self) -> Option<String> {
        self.view.snapshot().blocked.clone()
    }

    /// The queue as the list of caches and the status snapshot show it (no message).
    pub fn status(&self) -> QueueStatus {
        let snapshot = self.view.snapshot();
        QueueStatus {
            enabled: snapshot.enabled,
            depth: snapshot.pending.len(),
            oldest_age_seconds: snapshot.oldest_age(),
            pending: snapshot.pending.keys().cloned().collect(),
        }
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
