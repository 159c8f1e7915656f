//! The startup flow of SPEC §2 between Postgres and the files: load the project's rows,
//! write or repair files (newer side wins; a file newer than its row is queued for
//! Postgres). Retention is [`crate::retention`]'s.

use crate::store::StoreError;
use crate::tiers::Tiers;
use futures_util::StreamExt;

/// What the startup sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Rows read from Postgres.
    pub rows: usize,
    /// Files written or repaired from rows.
    pub from_postgres: usize,
    /// Files newer than their row, queued for Postgres.
    pub to_postgres: usize,
    /// Files already equal to their row.
    pub in_sync: usize,
}

/// How many rows are fetched ahead of the file being written: Postgres sends the next
/// row and the blocking pool verifies it while the file tier writes the previous one.
const FETCH_AHEAD: usize = 4;

/// Reconciles the files with this project's rows. Needs Postgres enabled.
///
/// Compares the files with the rows' versions and ETags first (one small query), then
/// fetches only the rows whose files are missing, older or corrupt: a restart with the
/// files in sync reads no document data at all.
///
/// # Errors
/// [`StoreError`] when Postgres cannot be read (the caller keeps trying in the background).
pub async fn sync_from_postgres(tiers: &Tiers) -> Result<SyncReport, StoreError> {
    let (Some(store), Some(queue)) = (tiers.store(), tiers.queue()) else { return Ok(SyncReport::default()) };
    let heads = store.read_heads().await?;
    let index = tiers.files().list().await.map_err(|e| StoreError::Unavailable(format!("file tier: {e}")))?;
    // Asked after the rows and the index: a save the queue finishes meanwhile shows in
    // the index as newer than its row, or makes the adopt below a no-op.
    let pending = queue.pending().await.map_err(|e| StoreError::Unavailable(format!("retry queue: {e}")))?;
    let mut report = SyncReport { rows: heads.len(), ..SyncReport::default() };
    let mut seen = std::collections::HashSet::new();
    let mut to_adopt = Vec::new();
    for row in heads {
        seen.insert(row.name.clone());
        match index.get(&row.name) {
            // Deleted here: the queue sends the delete; the row must not come back.
            Some(d) if d.deleted => {}
            Some(d) if d.etag.is_some() && d.version > row.version => {
                queue.enqueue_write(row.name.clone(), d.version);
                report.to_postgres += 1;
            }
            Some(d) if d.version == row.version && d.etag.as_deref() == Some(row.etag.as_str()) => {
                queue.mark_synced(row.name.clone(), row.version);
                report.in_sync += 1;
            }
            // Same version, other data: both were acknowledged; the file's save is sent
            // and given a version above the row's (SPEC §7).
            Some(d) if d.etag.is_some() && d.version == row.version => {
                queue.enqueue_write(row.name.clone(), d.version);
                report.to_postgres += 1;
            }
            // An acknowledged save Postgres never got, below a row it could not know of
            // (data_dir lost while Postgres was away, another instance's save): it is not
            // dropped for the row, but sent and given a version above it (SPEC §7).
            Some(d) if d.etag.is_some() && pending.contains(&row.name) => {
                queue.enqueue_write(row.name.clone(), d.version);
                report.to_postgres += 1;
            }
            _ => to_adopt.push(row.name),
        }
    }
    let mut rows = futures_util::stream::iter(to_adopt)
        .map(|name| async move { (name.clone(), store.read(name).await) })
        .buffered(FETCH_AHEAD);
    while let Some((name, row)) = rows.next().await {
        // A row that turned out corrupt (logged by the store) or vanished is treated as
        // absent: the file, if it holds a save, is sent below.
        let Some(row) = row? else {
            seen.remove(&name);
            continue;
        };
        let version = row.version;
        match tiers.files().adopt(row, None).await {
            Ok(_) => {
                queue.mark_synced(name.clone(), version);
                report.from_postgres += 1;
                tracing::info!(cache = %name, version, tier = "postgres", "file written from Postgres");
            }
            Err(e) => tracing::error!(cache = %name, alert = true, error = %e, "cannot write the file from Postgres"),
        }
    }
    for (name, d) in &index {
        if !seen.contains(name) && d.etag.is_some() {
            queue.enqueue_write(name.clone(), d.version);
            report.to_postgres += 1;
        }
    }
    Ok(report)
}
