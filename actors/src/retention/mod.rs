//! Retention: a cache that is no longer configured is purged from each tier once
//! unsaved for its `retention_days`; configured caches are never touched.
//!
//! - Postgres: each row's own `retention_days` decides, in the DELETE itself.
//! - Files: the envelope's `saved_at` is the age; the retention is the largest of the
//!   value the cache was last configured with ([`record`]) and its row's, or
//!   [`DEFAULT_DAYS`] when neither is known. The file is removed without a tombstone:
//!   the purge never goes through the DELETE path, so it never deletes a row early.
//!
//! A pass runs at startup, after every reload and then periodically ([`run`]), with
//! or without Postgres, always on the configuration in force.

mod handle;
pub mod record;

pub use handle::RetentionHandle;

use crate::domain::CacheName;
use crate::save_flow::SaveFlow;
use crate::store::{StoreHandle, UnconfiguredRow};
use crate::supervisor::{guard_async, ActorId, FailureReporter};
use chrono::{DateTime, Utc};
use record::RetentionRecord;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The retention of a cache whose configured value was never recorded.
pub const DEFAULT_DAYS: u32 = 30;

/// The configured caches and their `retention_days`, as of the last (re)load.
pub type Configured = Arc<HashMap<CacheName, u32>>;

/// What a pass works through: the rows (with Postgres) and the save flow, which
/// removes a file and its copy in memory together.
#[derive(Clone)]
pub struct RetentionPeers {
    /// Postgres, when enabled.
    pub store: Option<StoreHandle>,
    /// The runtime's save flow.
    pub saver: SaveFlow,
}

/// What one pass purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Envelope files removed.
    pub files: Vec<CacheName>,
    /// Postgres rows deleted.
    pub rows: Vec<CacheName>,
}

/// Runs a pass now, after every change of `configured` (a reload) and otherwise every
/// `every`; ends when the sender of `configured` is dropped. A pass that panics is
/// reported to the supervisor (as `retention`) and the loop goes on.
pub async fn run(
    peers: RetentionPeers,
    data_dir: PathBuf,
    mut configured: watch::Receiver<Configured>,
    every: Duration,
    reporter: FailureReporter,
) {
    loop {
        configured.borrow_and_update();
        let pass = async {
            fail::fail_point!("retention::pass");
            purge_unconfigured(&peers, &data_dir, &configured).await;
        };
        // Reported and logged by the guard; the next pass runs as planned.
        let _ = guard_async(ActorId::Retention.label(), reporter.clone(), pass).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = configured.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One pass over both tiers. `configured` is read again before each file is purged,
/// so a cache added by a reload meanwhile is left alone.
///
/// Order: the configured retentions are stored in their rows and the unconfigured rows
/// read, then files are purged, then rows. A row purge notifies every instance, whose
/// listener drops its copy of the cache: by then this instance's file pass is done.
pub async fn purge_unconfigured(
    peers: &RetentionPeers,
    data_dir: &Path,
    configured: &watch::Receiver<Configured>,
) -> PurgeReport {
    let now_configured = configured.borrow().clone();
    let record = remember(data_dir, &now_configured);
    let pairs: Vec<(CacheName, u32)> = now_configured.iter().map(|(n, d)| (n.clone(), *d)).collect();
    let rows = match peers.store.as_ref() {
        Some(store) => store.retention_rows(pairs).await.unwrap_or_else(|e| {
            tracing::warn!(tier = "postgres", error = %e, "retention: cannot read Postgres; files only this time");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let mut report = PurgeReport { files: purge_files(peers, configured, &record, &rows).await, rows: Vec::new() };
    if let Some(store) = peers.store.as_ref() {
        let keep: Vec<CacheName> = configured.borrow().keys().cloned().collect();
        match store.purge_unconfigured(keep).await {
            Ok(purged) => {
                for row in purged {
                    log_purge(&row.name, "postgres", row.saved_at, row.retention_days);
                    report.rows.push(row.name);
                }
            }
            Err(e) => {
                tracing::warn!(tier = "postgres", error = %e, "retention purge in Postgres failed; will try again later")
            }
        }
    }
    if let Ok(index) = peers.saver.files().list().await {
        // Read again: a reload may have recorded values meanwhile (no await from here on).
        let mut record = RetentionRecord::load(data_dir);
        let now_configured = configured.borrow().clone();
        record.remember(&now_configured);
        record.retain(|name| now_configured.contains_key(name) || index.contains_key(name));
        save(&record);
    }
    tracing::debug!(files = report.files.len(), rows = report.rows.len(), "retention pass finished");
    report
}

/// Records the configured caches' `retention_days` in `data_dir` now (at every pass,
/// and on reload, so that a cache removed before the next pass is still known), and
/// returns the record.
pub fn remember(data_dir: &Path, configured: &HashMap<CacheName, u32>) -> RetentionRecord {
    let mut record = RetentionRecord::load(data_dir);
    record.remember(configured);
    save(&record);
    record
}

fn save(record: &RetentionRecord) {
    if let Err(e) = record.save() {
        tracing::warn!(error = %e, "cannot write the retention record; will try again at the next pass");
    }
}

/// The file side of a pass: envelopes of unconfigured caches older than their retention.
async fn purge_files(
    peers: &RetentionPeers,
    configured: &watch::Receiver<Configured>,
    record: &RetentionRecord,
    rows: &[UnconfiguredRow],
) -> Vec<CacheName> {
    let Ok(index) = peers.saver.files().list().await else { return Vec::new() };
    let row_days: HashMap<&CacheName, u32> = rows.iter().map(|r| (&r.name, r.retention_days)).collect();
    let mut purged = Vec::new();
    for (name, on_disk) in index {
        if on_disk.etag.is_none() || configured.borrow().contains_key(&name) {
            continue;
        }
        let days = file_retention(record.get(&name), row_days.get(&name).copied());
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
        match peers.saver.expire(&name, cutoff).await {
            Ok(Some(saved_at)) => {
                log_purge(&name, "file", saved_at, days);
                purged.push(name);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(cache = %name, tier = "file", error = %e, "retention purge failed; will try again later")
            }
        }
    }
    purged
}

/// The file side's retention for an unconfigured cache: never shorter than what the
/// operator last configured (`recorded`) nor than its row's own value.
pub fn file_retention(recorded: Option<u32>, row: Option<u32>) -> u32 {
    recorded.max(row).unwrap_or(DEFAULT_DAYS)
}

fn log_purge(name: &CacheName, tier: &'static str, saved_at: DateTime<Utc>, retention_days: u32) {
    let age_days = (Utc::now() - saved_at).num_days();
    tracing::info!(
        cache = %name, tier, age_days, retention_days, saved_at = %saved_at.to_rfc3339(),
        "retention: purged a cache no longer configured"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_side_keeps_the_longest_known_retention() {
        assert_eq!(file_retention(None, None), DEFAULT_DAYS);
        assert_eq!(file_retention(Some(7), None), 7);
        assert_eq!(file_retention(None, Some(90)), 90);
        assert_eq!(file_retention(Some(7), Some(90)), 90);
        assert_eq!(file_retention(Some(120), Some(90)), 120);
    }
}
