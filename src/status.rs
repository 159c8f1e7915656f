//! The SIGUSR2 status snapshot: one log line `status snapshot` with the actors, the
//! retry queue and every cache's freshness (`caches`, a short text per cache), every
//! value its own field; then one line per cache with its versions and age as numbers,
//! so a log pipeline filters on `retry_queue_depth` or `cache` without parsing a string.

use crate::api::AppState;
use crate::config::Settings;
use chrono::Utc;
use tiercache_actors::supervisor::ActorId;

/// What the snapshot knows of one cache.
struct CacheLine<'a> {
    name: &'a str,
    file_version: Option<u64>,
    memory_version: Option<u64>,
    age_seconds: Option<i64>,
}

impl CacheLine<'_> {
    /// `strava: memory v3, file v3, 12s old`, or `fundraising: no data`.
    fn summary(&self) -> String {
        let (name, memory, file) = (self.name, self.memory_version, self.file_version);
        let version = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("v{v}"));
        match (memory, file) {
            (None, None) => format!("{name}: no data"),
            _ => {
                let age = self.age_seconds.map(|a| format!(", {a}s old")).unwrap_or_default();
                format!("{name}: memory {}, file {}{age}", version(memory), version(file))
            }
        }
    }
}

/// Logs the snapshot lines: `status snapshot`, then `status snapshot: cache` per cache.
pub(crate) async fn log_snapshot(state: &AppState, settings: &Settings) {
    let tiers = &state.tiers;
    let on_disk = tiers.on_disk().await.unwrap_or_default();
    let caches: Vec<CacheLine<'_>> = settings
        .caches
        .iter()
        .map(|c| {
            let memory = tiers.view().get(&c.name);
            CacheLine {
                name: c.name.as_str(),
                file_version: on_disk.get(&c.name).filter(|d| d.etag.is_some()).map(|d| d.version),
                memory_version: memory.as_ref().map(|e| e.doc.version),
                age_seconds: memory
                    .as_ref()
                    .map(|e| (Utc::now() - e.doc.last_fetch.unwrap_or(e.doc.saved_at)).num_seconds()),
            }
        })
        .collect();
    let queue = tiers.postgres_status().map(|(status, _)| status);
    let summary: Vec<String> = caches.iter().map(CacheLine::summary).collect();
    tracing::info!(
        ready = state.is_ready(),
        memory_actor = state.mailboxes.open(ActorId::Memory),
        file_actor = state.mailboxes.open(ActorId::File),
        store_actor = state.mailboxes.open(ActorId::Store),
        retry_actor = state.mailboxes.open(ActorId::Retry),
        refresher_actor = state.mailboxes.open(ActorId::Refresher),
        retry_queue_depth = queue.as_ref().map(|s| s.depth as u64),
        retry_queue_oldest_age_seconds = queue.as_ref().and_then(|s| s.oldest_age_seconds),
        retry_queue_pending =
            queue.as_ref().map(|s| s.pending.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")),
        caches = summary.join("; "),
        "status snapshot"
    );
    for cache in &caches {
        tracing::info!(
            cache = cache.name,
            file_version = cache.file_version,
            memory_version = cache.memory_version,
            age_seconds = cache.age_seconds,
            "status snapshot: cache"
        );
    }
}
