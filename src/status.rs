//! The SIGUSR2 status snapshot: one log line with the actors and the retry queue, then
//! one per configured cache with its versions and age, every value its own field (a log
//! pipeline filters on `retry_queue_depth` or `cache` without parsing a string).

use crate::api::AppState;
use crate::config::Settings;
use chrono::Utc;

/// Logs the snapshot lines: `status snapshot`, then `status snapshot: cache` per cache.
pub async fn log_snapshot(state: &AppState, settings: &Settings) {
    let tiers = &state.tiers;
    let queue = tiers.queue().map(|q| q.view().snapshot());
    let names: Vec<&str> = settings.caches.iter().map(|c| c.name.as_str()).collect();
    tracing::info!(
        ready = state.is_ready(),
        memory_actor = tiers.memory().connected(),
        file_actor = tiers.files().connected(),
        store_actor = tiers.store().map(|s| s.connected()),
        retry_actor = tiers.queue().map(|q| q.connected()),
        refresher_actor = tiers.refresher().map(|r| r.connected()),
        retry_queue_depth = queue.as_ref().map(|s| s.pending.len() as u64),
        retry_queue_oldest_age_seconds = queue.as_ref().and_then(|s| s.oldest_age()),
        retry_queue_pending =
            queue.as_ref().map(|s| s.pending.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(",")),
        caches = names.join(","),
        "status snapshot"
    );
    let on_disk = tiers.files().list().await.unwrap_or_default();
    for cache in &settings.caches {
        let memory = tiers.view().get(&cache.name);
        let age = memory.as_ref().map(|e| (Utc::now() - e.doc.last_fetch.unwrap_or(e.doc.saved_at)).num_seconds());
        tracing::info!(
            cache = cache.name.as_str(),
            file_version = on_disk.get(&cache.name).filter(|d| d.etag.is_some()).map(|d| d.version),
            memory_version = memory.as_ref().map(|e| e.doc.version),
            age_seconds = age,
            "status snapshot: cache"
        );
    }
}
