//! The startup step between booting and readiness: the file tier's index, the
//! transaction-pooler check, and the timed sync with Postgres, which keeps being retried
//! in the background (`[retry]` backoff) when Postgres does not answer.

use super::error::BootError;
use crate::domain::CacheName;
use crate::files::{FileHandle, OnDisk};
use crate::retry_queue::backoff::Backoff;
use crate::retry_queue::{BackoffPolicy, RetryQueueHandle};
use crate::save_flow::SaveFlow;
use crate::startup::{sync_from_postgres, SyncError, SyncReport};
use crate::store::pooler::transaction_pooled;
use crate::store::{ConnectConfig, StoreError, StoreHandle};
use crate::supervisor::{guard_async, spawn_guarded, ActorId, FailureReporter};
use std::collections::HashMap;
use std::time::Duration;

/// How the timed startup sync with Postgres ended.
#[derive(Debug)]
pub enum SyncOutcome {
    /// Postgres is disabled: nothing to sync.
    Disabled,
    /// The files were reconciled with the project's rows.
    Synced(SyncReport),
    /// Postgres answered but the project is not registered.
    NoProject(StoreError),
    /// Postgres could not be read.
    Unavailable(StoreError),
    /// Postgres did not answer within the limit.
    TimedOut,
    /// The files or the retry queue could not be read (not Postgres's doing).
    Local(SyncError),
}

impl SyncOutcome {
    /// Whether the rows were read (versions continue above what Postgres holds).
    pub fn synced(&self) -> bool {
        matches!(self, Self::Synced(_))
    }

    /// Whether Postgres is enabled but was not synced with.
    fn failed(&self) -> bool {
        !matches!(self, Self::Disabled | Self::Synced(_))
    }
}

/// What the startup sync reads and writes: the rows, what the queue still has to
/// send, and the save flow that adopts rows into the files.
#[derive(Clone)]
pub(super) struct SyncPeers {
    pub store: StoreHandle,
    pub queue: RetryQueueHandle,
    pub saver: SaveFlow,
}

impl SyncPeers {
    async fn sync(&self) -> Result<SyncReport, SyncError> {
        sync_from_postgres(&self.store, &self.queue, &self.saver).await
    }
}

/// What the startup step found.
#[derive(Debug)]
pub struct Startup {
    /// Caches the file tier indexed in the data directory.
    pub caches_on_disk: usize,
    /// How the sync with Postgres ended.
    pub sync: SyncOutcome,
}

/// The file tier's index of the data directory: startup waits for it.
pub(super) async fn index(files: &FileHandle) -> Result<HashMap<CacheName, OnDisk>, BootError> {
    files.list().await.map_err(|e| BootError::FileTier(e.to_string()))
}

/// Runs the startup sync, bounded by `limit`.
pub(super) async fn timed_sync(peers: &SyncPeers, limit: Duration) -> SyncOutcome {
    match tokio::time::timeout(limit, peers.sync()).await {
        Ok(Ok(report)) => SyncOutcome::Synced(report),
        Ok(Err(SyncError::Postgres(e @ StoreError::NoProject(_)))) => SyncOutcome::NoProject(e),
        Ok(Err(SyncError::Postgres(e))) => SyncOutcome::Unavailable(e),
        Ok(Err(local)) => SyncOutcome::Local(local),
        Err(_) => SyncOutcome::TimedOut,
    }
}

/// The daemon's lines for each outcome; on failure the sync goes on in the background.
pub(super) fn report_and_resync(
    outcome: &SyncOutcome,
    peers: SyncPeers,
    backoff: &BackoffPolicy,
    reporter: &FailureReporter,
) {
    match outcome {
        SyncOutcome::Disabled => {}
        SyncOutcome::Synced(report) => tracing::info!(
            rows = report.rows,
            from_postgres = report.from_postgres,
            to_postgres = report.to_postgres,
            in_sync = report.in_sync,
            "loaded from Postgres"
        ),
        SyncOutcome::NoProject(e) => tracing::error!(
            tier = "postgres", alert = true, error = %e,
            "Postgres is up but the project is not registered; serving from files until it is"
        ),
        SyncOutcome::Unavailable(e) => {
            tracing::error!(tier = "postgres", alert = true, error = %e, "Postgres unavailable at startup; serving from files");
        }
        SyncOutcome::TimedOut => {
            tracing::error!(tier = "postgres", alert = true, "Postgres did not answer at startup; serving from files");
        }
        SyncOutcome::Local(e) => {
            tracing::error!(alert = true, error = %e, "cannot compare the files with Postgres at startup; serving from files");
        }
    }
    if outcome.failed() {
        resync_in_background(peers, backoff, reporter.clone());
    }
}

/// An offline command's lines: it works from the files alone, without retrying.
pub(super) fn report_offline(outcome: &SyncOutcome) {
    match outcome {
        SyncOutcome::NoProject(e) | SyncOutcome::Unavailable(e) => {
            tracing::warn!(error = %e, "Postgres unavailable; working from the files alone");
        }
        SyncOutcome::TimedOut => tracing::warn!("Postgres did not answer in time; working from the files alone"),
        SyncOutcome::Local(e) => {
            tracing::warn!(error = %e, "cannot compare the files with Postgres; working from the files alone")
        }
        SyncOutcome::Disabled | SyncOutcome::Synced(_) => {}
    }
}

/// Retries the startup sync until Postgres answers, with the same waits, jitter
/// included, as every other retry (`[retry]`). The sync is the store's work: an attempt
/// that panics is reported as the store's and the next one follows the backoff.
fn resync_in_background(peers: SyncPeers, policy: &BackoffPolicy, reporter: FailureReporter) {
    let mut backoff = Backoff::new(policy);
    spawn_guarded(ActorId::Store, reporter.clone(), async move {
        loop {
            tokio::time::sleep(backoff.next_wait()).await;
            let attempt = guard_async(ActorId::Store.label(), reporter.clone(), peers.sync()).await;
            match attempt {
                Err(_panicked) => {} // reported; tried again after the next wait
                Ok(Ok(report)) => {
                    tracing::info!(
                        rows = report.rows,
                        from_postgres = report.from_postgres,
                        to_postgres = report.to_postgres,
                        "Postgres is back; files reconciled"
                    );
                    return;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "Postgres still unavailable"),
            }
        }
    });
}

/// Refuses to start when `statement_cache = true` and a transaction pooler answers:
/// named prepared statements, refresh leadership and LISTEN would all fail there, some
/// of them silently. Postgres not answering within `limit` proves nothing: the startup
/// sync then goes on as usual (and retries in the background).
pub(super) async fn refuse_transaction_pooler(connect: &ConnectConfig, limit: Duration) -> Result<(), BootError> {
    if !connect.options.statement_cache {
        return Ok(());
    }
    match tokio::time::timeout(limit, transaction_pooled(connect)).await {
        Ok(Ok(Some((first, second)))) => Err(BootError::TransactionPooler { first, second }),
        Ok(Ok(None)) | Err(_) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "transaction pooler check not possible now");
            Ok(())
        }
    }
}
