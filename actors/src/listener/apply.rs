//! What a notification (or the reconciliation after a reconnect) does to local copies.

use super::ListenerPeers;
use crate::domain::{CacheName, Document};
use serde::Deserialize;
use std::sync::Arc;
use tokio_postgres::types::Type;

#[derive(Deserialize)]
struct Payload {
    cache: String,
    version: i64,
    op: String,
}

/// Whether `name` still has a local save on its way to Postgres: such a copy is never
/// replaced (it will be written above the other instance's row; last save wins).
fn ours_pending(peers: &ListenerPeers, name: &CacheName) -> bool {
    peers.queue.view().snapshot().pending.contains_key(name)
}

async fn local_version(peers: &ListenerPeers, name: &CacheName) -> Option<(u64, bool)> {
    let index = peers.files.list().await.ok()?;
    index.get(name).map(|d| (d.version, d.etag.is_some()))
}

async fn adopt(peers: &ListenerPeers, doc: Arc<Document>) {
    match peers.files.adopt(doc.clone(), None).await {
        Ok(true) => {
            let _ = peers.memory.store(doc.clone()).await;
            if let Some(r) = &peers.refresher {
                r.observed(&doc);
            }
            peers.queue.mark_synced(doc.name.clone(), doc.version);
            tracing::info!(cache = %doc.name, version = doc.version, "replaced by a newer version from another instance");
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(cache = %doc.name, error = %e, "could not adopt another instance's version"),
    }
}

/// Handles one NOTIFY payload.
pub async fn notification(peers: &ListenerPeers, payload: &str) {
    let Ok(p) = serde_json::from_str::<Payload>(payload) else { return }; // probes and foreign payloads
    let Ok(name) = CacheName::parse(&p.cache) else { return };
    let version = u64::try_from(p.version).unwrap_or(0);
    if ours_pending(peers, &name) {
        return;
    }
    let local = local_version(peers, &name).await;
    if p.op == "DELETE" {
        // Deleted elsewhere: drop our copy, unless we hold something newer.
        if local.is_some_and(|(v, live)| live && v <= version) {
            let removed = peers.files.remove(name.clone()).await;
            let _ = peers.files.forget_tombstone(name.clone()).await;
            let _ = peers.memory.evict(&name).await;
            if removed.is_ok() {
                tracing::info!(cache = %name, version, "deleted by another instance");
            }
        }
        return;
    }
    if local.is_some_and(|(v, _)| v >= version) {
        return; // our own write, or already adopted
    }
    match peers.store.read(name.clone()).await {
        Ok(Some(doc)) => adopt(peers, doc).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(cache = %name, error = %e, "could not read another instance's write"),
    }
}

/// After (re)connecting: one query for every row's version; newer rows are adopted.
pub async fn reconcile(peers: &ListenerPeers, client: &tokio_postgres::Client, project_id: i32) {
    let rows = match client
        .query_typed(
            "SELECT cache_type, version FROM cache_storage WHERE project_id = $1",
            &[(&project_id, Type::INT4)],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "could not reconcile versions after connecting");
            return;
        }
    };
    let Ok(index) = peers.files.list().await else { return };
    for row in rows {
        let Ok(name) = CacheName::parse(row.get::<_, &str>(0)) else { continue };
        let version = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        let local = index.get(&name);
        if local.is_some_and(|d| d.version >= version || d.deleted) || ours_pending(peers, &name) {
            continue;
        }
        if let Ok(Some(doc)) = peers.store.read(name.clone()).await {
            adopt(peers, doc).await;
        }
    }
}
