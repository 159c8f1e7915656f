//! A typed handle to the retry queue. Its messages are fire-and-forget: the durable
//! record is the envelope on disk, so a lost message is repaired by the next rebuild.

use super::messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};
use super::{QueueView, RetryQueue};
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

    /// The published status.
    pub fn view(&self) -> &QueueView {
        &self.view
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
