//! What a notification (or the reconciliation after a reconnect) does to local copies.
//!
//! A notification is only a hint that something of the project changed: any database
//! role can `NOTIFY` on any channel, so its payload is never trusted (the schema sends
//! none). The daemon acts only on what it reads back through its own connection, which
//! row-level security limits to its project: a row newer than the local copy is
//! adopted, and a local copy whose row is gone is dropped only when the project's audit
//! (written by a trigger as the table owner, never by a project role) records that
//! delete.

use super::ListenerPeers;
use crate::domain::{CacheName, Document};
use crate::save_flow::InMemory;
use crate::store::listen;
use std::sync::Arc;

/// Whether `name` still has a local save on its way to Postgres: such a copy is never
/// replaced (it will be written above the other instance's row; last save wins).
fn ours_pending(peers: &ListenerPeers, name: &CacheName) -> bool {
    peers.queue.is_pending(name)
}

async fn adopt(peers: &ListenerPeers, doc: Arc<Document>) {
    match peers.saver.adopt(doc.clone(), None, InMemory::Fill).await {
        Ok(true) => {
            tracing::info!(cache = %doc.name, version = doc.version, "replaced by a newer version from another instance");
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(cache = %doc.name, error = %e, "could not adopt another instance's version"),
    }
}

/// Whether the project's audit records a delete of `name` at `version` or above; a
/// failed read keeps the local copy.
async fn delete_recorded(client: &tokio_postgres::Client, project_id: i32, name: &CacheName, version: u64) -> bool {
    match listen::delete_audited(client, project_id, name, version).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(cache = %name, error = %e, "could not read the audit; the local copy is kept");
            false
        }
    }
}

async fn drop_deleted(peers: &ListenerPeers, name: &CacheName, version: u64) {
    let removed = peers.files.remove(name.clone()).await;
    let _ = peers.files.forget_tombstone(name.clone()).await;
    let _ = peers.memory.evict(name).await;
    if removed.is_ok() {
        tracing::info!(cache = %name, version, "deleted by another instance");
    }
}

/// Reads every row's version through this instance's own connection and brings local
/// copies in line: newer rows adopted, audited deletes dropped. Runs after (re)connecting
/// and after every notification, whatever its payload.
pub async fn reconcile(peers: &ListenerPeers, client: &tokio_postgres::Client, project_id: i32) {
    let in_postgres = match listen::row_versions(client, project_id).await {
        Ok(versions) => versions,
        Err(e) => {
            tracing::warn!(error = %e, "could not reconcile versions with Postgres");
            return;
        }
    };
    let Ok(index) = peers.files.list().await else { return };
    for (name, version) in &in_postgres {
        let local = index.get(name);
        if local.is_some_and(|d| d.version >= *version || d.deleted) || ours_pending(peers, name) {
            continue;
        }
        if let Ok(Some(doc)) = peers.store.read(name.clone()).await {
            adopt(peers, doc).await;
        }
    }
    for (name, on_disk) in &index {
        let live = on_disk.etag.is_some() && !on_disk.deleted;
        if !live || in_postgres.contains_key(name) || ours_pending(peers, name) {
            continue;
        }
        if delete_recorded(client, project_id, name, on_disk.version).await {
            drop_deleted(peers, name, on_disk.version).await;
        }
    }
}
