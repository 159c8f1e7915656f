//! The startup flow between Postgres and the files: load the project's rows, write or
//! repair files (newer side wins; a file newer than its row is queued for Postgres).
//! [`plan`] decides, [`sync_from_postgres`] carries the plan out. Retention is
//! [`crate::retention`]'s.

use crate::domain::CacheName;
use crate::files::{FileTierError, OnDisk};
use crate::retry_queue::RetryQueueHandle;
use crate::save_flow::{InMemory, SaveFlow};
use crate::store::{RowHead, StoreError, StoreHandle};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};

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

/// Why the startup sync stopped: Postgres, or a local tier (which says nothing about
/// Postgres).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Postgres could not be read.
    #[error(transparent)]
    Postgres(#[from] StoreError),
    /// The file tier's index could not be read.
    #[error("file tier: {0}")]
    FileTier(#[from] FileTierError),
    /// The retry queue did not say what it holds.
    #[error("retry queue: {0}")]
    Queue(#[from] actix::MailboxError),
}

/// How many rows are fetched at once (each on its own pooled connection), and how many
/// verified rows may wait for the file tier: Postgres sends the next rows and the
/// blocking pool verifies them while the file tier writes the previous ones.
const FETCH_AHEAD: usize = 4;

/// What to do about one row, given the file on disk and whether a save of it is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowDecision {
    /// Deleted here: the queue sends the delete; the row must not come back.
    Nothing,
    /// The file's save (this version) is sent to Postgres.
    Send(u64),
    /// The file equals the row (this version): marked synced without reading the data.
    InSync(u64),
    /// The row's data is fetched and the file written from it, on condition that disk
    /// still holds what was compared (this version, 0 for no file; `None` for a corrupt
    /// file, which never stands in the way): a save acknowledged while the sync runs
    /// (the API answers before readiness) is never replaced, the queue sends it.
    Adopt(Option<u64>),
}

/// The per-row rule at startup: the newer side wins; equal version and ETag is in
/// sync; the same version with other data, or an acknowledged save still pending
/// below the row, is sent (and given a version above the row's).
pub fn decide(row: &RowHead, file: Option<&OnDisk>, pending: bool) -> RowDecision {
    let Some(d) = file else { return RowDecision::Adopt(Some(0)) };
    match d.etag.as_deref() {
        _ if d.deleted => RowDecision::Nothing,
        Some(_) if d.version > row.version => RowDecision::Send(d.version),
        Some(etag) if d.version == row.version && etag == row.etag => RowDecision::InSync(row.version),
        // Same version, other data: both were acknowledged; the file's save is sent.
        Some(_) if d.version == row.version => RowDecision::Send(d.version),
        // An acknowledged save Postgres never got, below a row it could not know of
        // (data_dir lost while Postgres was away, another instance's save): it is not
        // dropped for the row, but sent.
        Some(_) if pending => RowDecision::Send(d.version),
        Some(_) => RowDecision::Adopt(Some(d.version)),
        None => RowDecision::Adopt(None),
    }
}

/// The startup sync's decisions for every row and every file, before any data is read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartupPlan {
    /// Files whose save is sent to Postgres, with their version, in the rows' order.
    pub send: Vec<(CacheName, u64)>,
    /// Files equal to their row, with the row's version.
    pub in_sync: Vec<(CacheName, u64)>,
    /// Rows whose data is fetched and adopted, with the version disk must still hold
    /// (see [`RowDecision::Adopt`]).
    pub adopt: Vec<(CacheName, Option<u64>)>,
    /// Files (not deleted, not corrupt) that have no row: sent, by name.
    pub send_unrowed: Vec<(CacheName, u64)>,
}

/// Plans the startup sync from the rows' heads, the file tier's index and the caches
/// with a pending save. Deleted files and corrupt files without a row plan nothing.
pub fn plan(heads: &[RowHead], index: &HashMap<CacheName, OnDisk>, pending: &BTreeSet<CacheName>) -> StartupPlan {
    let mut plan = StartupPlan::default();
    for row in heads {
        match decide(row, index.get(&row.name), pending.contains(&row.name)) {
            RowDecision::Nothing => {}
            RowDecision::Send(version) => plan.send.push((row.name.clone(), version)),
            RowDecision::InSync(version) => plan.in_sync.push((row.name.clone(), version)),
            RowDecision::Adopt(compared) => plan.adopt.push((row.name.clone(), compared)),
        }
    }
    let rowed: HashSet<&CacheName> = heads.iter().map(|r| &r.name).collect();
    plan.send_unrowed =
        index.iter().filter(|(name, _)| !rowed.contains(name)).filter_map(|(name, d)| unrowed_send(name, d)).collect();
    plan.send_unrowed.sort();
    plan
}

/// A file with no row is sent when it holds a save (not deleted, not corrupt).
fn unrowed_send(name: &CacheName, d: &OnDisk) -> Option<(CacheName, u64)> {
    d.etag.as_ref().map(|_| (name.clone(), d.version))
}

/// Reconciles the files with this project's rows. Needs Postgres enabled.
///
/// Compares the files with the rows' versions and ETags first (one small query), then
/// fetches only the rows whose files are missing, older or corrupt: a restart with the
/// files in sync reads no document data at all.
///
/// # Errors
/// [`SyncError`] when Postgres or a local tier cannot be read (the caller keeps trying
/// in the background).
pub async fn sync_from_postgres(
    store: &StoreHandle,
    queue: &RetryQueueHandle,
    saver: &SaveFlow,
) -> Result<SyncReport, SyncError> {
    let heads = store.read_heads().await?;
    let index = saver.files().list().await?;
    // Asked after the rows and the index: a save the queue finishes meanwhile shows in
    // the index as newer than its row, or makes the adopt below a no-op.
    let pending = queue.pending().await?;
    let plan = plan(&heads, &index, &pending);
    let mut report = SyncReport { rows: heads.len(), ..SyncReport::default() };
    for (name, version) in plan.send {
        queue.enqueue_write(name, version).await;
        report.to_postgres += 1;
    }
    for (name, version) in plan.in_sync {
        queue.mark_synced(name, version);
        report.in_sync += 1;
    }
    let vanished = adopt_rows(saver, store, plan.adopt, &mut report).await?;
    // A row that turned out corrupt (logged by the store) or vanished is treated as
    // absent: the file, if it holds a save, is sent like one without a row.
    let vanished = vanished.iter().filter_map(|name| index.get(name).and_then(|d| unrowed_send(name, d)));
    for (name, version) in vanished.chain(plan.send_unrowed) {
        queue.enqueue_write(name, version).await;
        report.to_postgres += 1;
    }
    Ok(report)
}

/// Fetches the rows to adopt, a few ahead, and writes their files in batches of the rows
/// that have arrived (one directory sync per batch); returns the rows that turned out
/// corrupt or vanished.
///
/// The fetching runs beside the writing (one task, [`futures_util::future::select`]): while
/// the file tier syncs one batch, the next rows are asked for, sent by Postgres and
/// verified on the blocking pool, instead of the fetches waiting for the disk.
async fn adopt_rows(
    saver: &SaveFlow,
    store: &StoreHandle,
    to_adopt: Vec<(CacheName, Option<u64>)>,
    report: &mut SyncReport,
) -> Result<Vec<CacheName>, StoreError> {
    let (arrived, mut rows) = tokio::sync::mpsc::channel(FETCH_AHEAD);
    let fetch = async move {
        let mut fetched = futures_util::stream::iter(to_adopt)
            .map(|(name, compared)| async move { (name.clone(), compared, store.read(name).await) })
            .buffered(FETCH_AHEAD);
        while let Some(row) = fetched.next().await {
            if arrived.send(row).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        let mut vanished = Vec::new();
        while let Some(first) = rows.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                let Ok(row) = rows.try_recv() else { break };
                batch.push(row);
            }
            let mut docs = Vec::with_capacity(batch.len());
            for (name, compared, row) in batch {
                match row? {
                    Some(doc) => docs.push((doc, compared)),
                    None => vanished.push(name),
                }
            }
            write_batch(saver, docs, report).await;
        }
        Ok(vanished)
    };
    // The writing ends first only at an error: the fetches in flight are dropped then.
    match futures_util::future::select(std::pin::pin!(fetch), std::pin::pin!(write)).await {
        futures_util::future::Either::Left(((), write)) => write.await,
        futures_util::future::Either::Right((result, _fetch)) => result,
    }
}

/// The most rows written with one directory sync: what arrived while the batch before
/// was written, up to this.
const MAX_BATCH: usize = 2 * FETCH_AHEAD;

/// Writes the files of `docs` (rows verified by the store, each with the file version it
/// was compared with) with one directory sync.
async fn write_batch(
    saver: &SaveFlow,
    docs: Vec<(std::sync::Arc<crate::domain::Document>, Option<u64>)>,
    report: &mut SyncReport,
) {
    if docs.is_empty() {
        return;
    }
    // Tests widen the window between reading the rows and adopting them (the API
    // takes saves meanwhile): `return(MS)` pauses here (without blocking the thread).
    crate::pause_point::pause_point("startup::adopt").await;
    let results = match saver.adopt_all(docs.clone(), InMemory::Follow).await {
        Ok(results) => results,
        Err(e) => docs.iter().map(|_| Err(FileTierError::Io(std::io::Error::other(e.to_string())))).collect(),
    };
    for ((doc, _), result) in docs.iter().zip(results) {
        match result {
            Ok(true) => {
                report.from_postgres += 1;
                tracing::info!(cache = %doc.name, version = doc.version, tier = "postgres", "file written from Postgres");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(cache = %doc.name, alert = true, error = %e, "cannot write the file from Postgres");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> CacheName {
        CacheName::parse(s).unwrap()
    }

    fn row(cache: &str, version: u64, etag: &str) -> RowHead {
        RowHead { name: name(cache), version, etag: etag.into(), last_fetch: None }
    }

    fn file(version: u64, etag: Option<&str>) -> OnDisk {
        OnDisk { version, etag: etag.map(Into::into), deleted: false, last_fetch: None, last_rich_fetch: None }
    }

    fn tombstone(version: u64) -> OnDisk {
        OnDisk { deleted: true, ..file(version, None) }
    }

    #[test]
    fn a_file_newer_than_its_row_is_sent() {
        assert_eq!(decide(&row("a", 3, "e3"), Some(&file(4, Some("e4"))), false), RowDecision::Send(4));
    }

    #[test]
    fn a_file_equal_to_its_row_is_in_sync() {
        assert_eq!(decide(&row("a", 3, "e3"), Some(&file(3, Some("e3"))), false), RowDecision::InSync(3));
        // Pending or not: equal is equal.
        assert_eq!(decide(&row("a", 3, "e3"), Some(&file(3, Some("e3"))), true), RowDecision::InSync(3));
    }

    #[test]
    fn the_same_version_with_other_data_is_sent() {
        assert_eq!(decide(&row("a", 3, "e3"), Some(&file(3, Some("other"))), false), RowDecision::Send(3));
    }

    #[test]
    fn a_pending_save_below_its_row_is_sent_not_dropped() {
        assert_eq!(decide(&row("a", 5, "e5"), Some(&file(2, Some("e2"))), true), RowDecision::Send(2));
    }

    #[test]
    fn an_older_file_without_a_pending_save_adopts_the_row() {
        assert_eq!(decide(&row("a", 5, "e5"), Some(&file(2, Some("e2"))), false), RowDecision::Adopt(Some(2)));
    }

    #[test]
    fn a_missing_or_corrupt_file_adopts_the_row() {
        // Missing: on condition that it is still missing.
        assert_eq!(decide(&row("a", 5, "e5"), None, false), RowDecision::Adopt(Some(0)));
        assert_eq!(decide(&row("a", 5, "e5"), None, true), RowDecision::Adopt(Some(0)));
        // Corrupt: no ETag, whatever its version and whether a save is pending.
        assert_eq!(decide(&row("a", 5, "e5"), Some(&file(9, None)), true), RowDecision::Adopt(None));
    }

    #[test]
    fn a_deleted_file_keeps_its_row_from_coming_back() {
        assert_eq!(decide(&row("a", 5, "e5"), Some(&tombstone(6)), false), RowDecision::Nothing);
        assert_eq!(decide(&row("a", 5, "e5"), Some(&tombstone(2)), true), RowDecision::Nothing);
    }

    #[test]
    fn the_plan_covers_every_row_and_every_file() {
        let heads = [row("newer", 1, "x"), row("same", 2, "e2"), row("older", 5, "e5"), row("gone", 1, "x")];
        let index: HashMap<CacheName, OnDisk> = [
            (name("newer"), file(2, Some("y"))),
            (name("same"), file(2, Some("e2"))),
            (name("older"), file(1, Some("e1"))),
            (name("gone"), tombstone(2)),
            (name("local-b"), file(7, Some("b"))),
            (name("local-a"), file(3, Some("a"))),
            (name("local-deleted"), tombstone(4)),
            (name("local-corrupt"), file(4, None)),
        ]
        .into_iter()
        .collect();
        let p = plan(&heads, &index, &BTreeSet::new());
        assert_eq!(p.send, vec![(name("newer"), 2)]);
        assert_eq!(p.in_sync, vec![(name("same"), 2)]);
        assert_eq!(p.adopt, vec![(name("older"), Some(1))]);
        assert_eq!(p.send_unrowed, vec![(name("local-a"), 3), (name("local-b"), 7)]);
    }

    #[test]
    fn the_plan_sends_a_pending_save_and_adopts_rows_without_files() {
        let heads = [row("pending", 4, "e4"), row("fresh", 1, "e1")];
        let index: HashMap<CacheName, OnDisk> = [(name("pending"), file(3, Some("e3")))].into_iter().collect();
        let pending: BTreeSet<CacheName> = [name("pending")].into_iter().collect();
        let p = plan(&heads, &index, &pending);
        assert_eq!(p.send, vec![(name("pending"), 3)]);
        assert_eq!(p.adopt, vec![(name("fresh"), Some(0))]);
        assert!(p.in_sync.is_empty() && p.send_unrowed.is_empty());
    }

    #[test]
    fn no_rows_sends_every_file_that_holds_a_save() {
        let index: HashMap<CacheName, OnDisk> =
            [(name("a"), file(1, Some("e"))), (name("d"), tombstone(1))].into_iter().collect();
        let p = plan(&[], &index, &BTreeSet::new());
        assert_eq!(p, StartupPlan { send_unrowed: vec![(name("a"), 1)], ..StartupPlan::default() });
    }
}
