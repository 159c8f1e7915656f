//! The SIGUSR2 status snapshot: one log line with the actors and per-cache freshness.

use crate::api::AppState;
use crate::config::Settings;
use chrono::Utc;
use serde_json::json;

/// Logs one line describing every configured cache and the actors.
pub async fn log_snapshot(state: &AppState, settings: &Settings) {
    let tiers = &state.tiers;
    let on_disk = tiers.files().list().await.unwrap_or_default();
    let caches: Vec<_> = settings
        .caches
        .iter()
        .map(|c| {
            let memory = tiers.view().get(&c.name);
            let age = memory.as_ref().map(|e| (Utc::now() - e.doc.last_fetch.unwrap_or(e.doc.saved_at)).num_seconds());
            json!({
                "name": c.name.as_str(),
                "file_version": on_disk.get(&c.name).filter(|d| d.etag.is_some()).map(|d| d.version),
                "memory_version": memory.as_ref().map(|e| e.doc.version),
                "age_seconds": age,
            })
        })
        .collect();
    let queue = tiers.queue().map(|q| {
        let s = q.view().snapshot();
        json!({ "depth": s.pending.len(), "oldest_age_seconds": s.oldest_age(), "pending": s.pending.keys().collect::<Vec<_>>() })
    });
    let snapshot = json!({
        "ready": state.is_ready(),
        "actors": {
            "memory": tiers.memory().connected(),
            "file": tiers.files().connected(),
            "store": tiers.store().map(|s| s.connected()),
            "retry": tiers.queue().map(|q| q.connected()),
            "refresher": tiers.refresher().map(|r| r.connected()),
        },
        "retry_queue": queue,
        "caches": caches,
    });
    tracing::info!(snapshot = %snapshot, "status snapshot");
}
