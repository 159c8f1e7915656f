//! A typed handle to the retry queue. Its messages are fire-and-forget: the durable
//! record is the envelope on disk, so a lost message is repaired by the next rebuild.

use super::messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};
use super::{QueueStatus, QueueView, RetryQueue};
use crate::domain::CacheName;
use actix::{Addr, MailboxError};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Saves on their way into the queue, by cache: how many are between their durable
/// write and the queue taking them in.
type Announced = Arc<Mutex<HashMap<CacheName, usize>>>;

/// Cheap to clone.
#[derive(Clone)]
pub struct RetryQueueHandle {
    addr: Addr<RetryQueue>,
    view: QueueView,
    announced: Announced,
}

/// A save announced to the queue before its file is written (see
/// [`RetryQueueHandle::announce`]); dropping it withdraws the announcement.
#[must_use = "the save counts as pending only while this lives"]
pub struct Announcement {
    name: CacheName,
    announced: Announced,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let mut announced = self.announced.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = announced.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                announced.remove(&self.name);
            }
        }
    }
}

impl RetryQueueHandle {
    /// Wraps the supervised address and its published status.
    pub fn new(addr: Addr<RetryQueue>, view: QueueView) -> Self {
        Self { addr, view, announced: Announced::default() }
    }

    /// A local save of `name` is about to be written to disk and then enqueued: it
    /// counts as pending from now until the returned announcement is dropped (after
    /// [`Self::enqueue_write`]). Without it, the listener could compare another
    /// instance's row with the save already on disk but not yet in the queue, and
    /// replace an acknowledged save with an older one.
    pub fn announce(&self, name: &CacheName) -> Announcement {
        *self.announced.lock().unwrap_or_else(PoisonError::into_inner).entry(name.clone()).or_insert(0) += 1;
        Announcement { name: name.clone(), announced: self.announced.clone() }
    }

    /// See [`EnqueueWrite`]. Returns once the queue has taken it in, so that whoever
    /// acknowledges the save sees it pending (`postgres_synced: false`, the queue's
    /// depth) from then on. The save is on disk already: a closed mailbox only delays
    /// it to the queue's rebuild from the files.
    pub async fn enqueue_write(&self, name: CacheName, version: u64) {
        if let Err(e) = self.addr.send(EnqueueWrite { name: name.clone(), version }).await {
            tracing::warn!(cache = %name, error = %e, "retry queue did not take the save; it is sent after the queue's rebuild");
        }
    }

    /// See [`EnqueueDelete`]; returns once the queue has taken it in, like
    /// [`Self::enqueue_write`].
    pub async fn enqueue_delete(&self, name: CacheName) {
        if let Err(e) = self.addr.send(EnqueueDelete { name: name.clone() }).await {
            tracing::warn!(cache = %name, error = %e, "retry queue did not take the delete; it is sent after the queue's rebuild");
        }
    }

    /// See [`MarkSynced`].
    pub fn mark_synced(&self, name: CacheName, version: u64) {
        self.addr.do_send(MarkSynced { name, version });
    }

    /// See [`Reconcile`].
    pub fn reconcile(&self) {
        self.addr.do_send(Reconcile);
    }

    /// See [`PendingCaches`]. Announced saves count (see [`Self::announce`]): the
    /// startup sync must not adopt a row over a save on its way into the queue, as the
    /// listener must not.
    ///
    /// # Errors
    /// When the actor's mailbox is closed.
    pub async fn pending(&self) -> Result<BTreeSet<CacheName>, MailboxError> {
        // Announced first: a save that moves from announced to queued meanwhile is in
        // the actor's answer.
        let announced: Vec<CacheName> =
            self.announced.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        let mut pending = self.addr.send(PendingCaches).await?;
        pending.extend(announced);
        Ok(pending)
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

    /// Whether `name` has a save or a delete not yet in Postgres, or a save announced
    /// and on its way in (no message).
    pub fn is_pending(&self, name: &CacheName) -> bool {
        self.announced.lock().unwrap_or_else(PoisonError::into_inner).contains_key(name)
            || self.view.snapshot().pending.contains_key(name)
    }

    /// Whether Postgres acknowledged exactly `version` of `name` (and nothing of it is
    /// pending): meta's `postgres_synced` (no message).
    pub fn acknowledged(&self, name: &CacheName, version: u64) -> bool {
        let snapshot = self.view.snapshot();
        !snapshot.pending.contains_key(name) && snapshot.synced.get(name) == Some(&version)
    }

    /// Why saves cannot reach Postgres now, what to do, since when; `None` while they
    /// can (no message).
    pub fn outage(&self) -> Option<super::OutageView> {
        self.view.snapshot().outage.clone()
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
