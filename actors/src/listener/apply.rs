//! What a read of the row heads (after a hint, or every poll interval) does to local
//! copies.
//!
//! A notification is only a hint that something of the project changed: any database
//! role can `NOTIFY` on any channel, so its payload is never trusted (the daemon sends
//! none). The daemon acts only on what it reads back through its own connection, which
//! row-level security limits to its project: a row newer than the local copy is
//! adopted, a local copy whose row is gone is dropped only when the project's audit
//! (written by a trigger as the table owner, never by a project role) records that
//! delete, and a row at the local version whose `last_fetch` moved (the leading
//! instance found nothing new upstream, an HTTP 304) moves the local `last_fetch` too.

use super::ListenerPeers;
use crate::domain::{CacheName, Document};
use crate::save_flow::InMemory;
use crate::store::{RowHead, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Whether `name` still has a local save on its way to Postgres: such a copy is never
/// replaced (it will be written above the other instance's row; last save wins).
fn ours_pending(peers: &ListenerPeers, name: &CacheName) -> bool {
    peers.queue.is_pending(name)
}

/// Adopts `doc` on condition that disk still holds `local` (the live version the row was
/// compared with; 0: none): a local save made since is never replaced (the retry queue
/// writes it above the row).
async fn adopt(peers: &ListenerPeers, doc: Arc<Document>, local: Option<u64>) {
    // Tests widen the window between the comparison and the adopt: `return(MS)` pauses
    // this adopt (without blocking the thread) for MS milliseconds.
    crate::pause_point::pause_point("listener::adopt").await;
    match peers.saver.adopt(doc.clone(), local, InMemory::Fill).await {
        Ok(true) => {
            tracing::info!(cache = %doc.name, version = doc.version, "replaced by a newer version from Postgres");
        }
        Ok(false) => {}
        // The row may be this instance's own: an If-Match PUT whose file write failed.
        Err(e) => tracing::warn!(
            cache = %doc.name,
            version = doc.version,
            error = %e,
            "could not adopt the newer version in Postgres; trying again at the next read of the row heads"
        ),
    }
}

/// Drops the local copy at `version`, deleted elsewhere; a save made here since stays
/// (it is newer than the delete).
async fn drop_deleted(peers: &ListenerPeers, name: &CacheName, version: u64) {
    if let Ok(true) = peers.saver.drop_deleted(name, version).await {
        tracing::info!(cache = %name, version, "deleted by another instance");
    }
}

/// The leading instance checked the upstream at `checked_at` and found nothing new for
/// the version held here: the local copy's `last_fetch` moves (file and memory), and
/// the refresher counts it as a fresh result, so it neither refreshes nor takes over.
async fn follow_check(peers: &ListenerPeers, name: &CacheName, version: u64, checked_at: DateTime<Utc>) {
    let Ok(Some(held)) = peers.saver.files().read(name.clone()).await.map(|l| l.doc) else { return };
    if held.version != version || held.last_fetch >= Some(checked_at) {
        return;
    }
    match peers.saver.follow_check(&held, checked_at).await {
        Ok(_) => {
            tracing::debug!(cache = %name, version, "the leading instance checked the upstream: nothing new");
        }
        Err(e) => tracing::debug!(cache = %name, error = %e, "could not follow the leading instance's check"),
    }
}

/// What the follower remembers between two reads of the heads.
#[derive(Default)]
pub struct Follower {
    /// Local copies without a row whose audit was read and showed no delete, by the
    /// version held then: not asked again until the version changes or the row shows
    /// up (a copy that never reached Postgres would otherwise cost a read of the audit
    /// at every poll).
    absent_checked: HashMap<CacheName, u64>,
}

impl Follower {
    /// Reads the project's row heads through the store and brings local copies in line.
    ///
    /// # Errors
    /// The store's, when the heads cannot be read (nothing is changed then).
    pub async fn follow(&mut self, peers: &ListenerPeers) -> Result<(), StoreError> {
        let heads = peers.store.read_heads().await?;
        self.reconcile(peers, &heads).await;
        Ok(())
    }

    /// Brings local copies in line with `heads` (every row of the project): newer rows
    /// adopted, audited deletes dropped, the leader's checks followed.
    pub async fn reconcile(&mut self, peers: &ListenerPeers, heads: &[RowHead]) {
        let in_postgres: HashMap<&CacheName, &RowHead> = heads.iter().map(|h| (&h.name, h)).collect();
        // Tests widen the window between reading the heads and listing the files:
        // `return(MS)` pauses here (without blocking the thread).
        crate::pause_point::pause_point("listener::reconcile").await;
        let Ok(index) = peers.saver.files().list().await else { return };
        for head in heads {
            let name = &head.name;
            self.absent_checked.remove(name);
            let local = index.get(name);
            if local.is_some_and(|d| d.deleted) || ours_pending(peers, name) {
                continue;
            }
            match local {
                Some(d) if d.version > head.version => {}
                Some(d) if d.version == head.version => {
                    if d.etag.as_deref() == Some(head.etag.as_str()) && head.last_fetch > d.last_fetch {
                        if let Some(checked_at) = head.last_fetch {
                            follow_check(peers, name, head.version, checked_at).await;
                        }
                    }
                }
                _ => {
                    // Conditional on what was compared: a corrupt copy (no ETag) never
                    // stands in the way, nothing held is "still nothing".
                    let compared = match local {
                        Some(d) if d.etag.is_none() => None,
                        Some(d) => Some(d.version),
                        None => Some(0),
                    };
                    if let Ok(Some(doc)) = peers.store.read(name.clone()).await {
                        adopt(peers, doc, compared).await;
                    }
                }
            }
        }
        for (name, on_disk) in &index {
            let live = on_disk.etag.is_some() && !on_disk.deleted;
            if !live || in_postgres.contains_key(name) || ours_pending(peers, name) {
                continue;
            }
            if self.absent_checked.get(name) == Some(&on_disk.version) {
                continue;
            }
            // Only a delete the audit records drops the copy; a failed read keeps it.
            match peers.store.delete_audited(name.clone(), on_disk.version).await {
                Ok(true) => drop_deleted(peers, name, on_disk.version).await,
                Ok(false) => {
                    self.absent_checked.insert(name.clone(), on_disk.version);
                }
                Err(e) => tracing::warn!(cache = %name, error = %e, "could not read the audit; the local copy is kept"),
            }
        }
    }
}
