//! Every write of the store: through the schema's SECURITY DEFINER functions (the
//! project's role holds no write privilege, so it can take no lock that blocks another
//! project), each followed, once committed, by a hint to the project's other instances.

use super::listen::channel;
use super::messages::WriteOutcome;
use super::{sql, Store, StoreError, UnconfiguredRow};
use crate::domain::{CacheName, Document};
use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::Row;

/// What `tiercache_write_cache` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the row now holds the document that was sent.
    pub written: bool,
    /// The row's version after the call; 0 when there is no row.
    pub row_version: u64,
    /// The row's checksum after the call; `None` when there is no row.
    pub row_checksum: Option<String>,
}

fn to_unconfigured(r: &Row) -> Option<UnconfiguredRow> {
    Some(UnconfiguredRow {
        name: CacheName::parse(r.get::<_, &str>(0)).ok()?,
        saved_at: r.get(1),
        retention_days: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
    })
}

impl Store {
    /// One call of `tiercache_write_cache`: `doc` at `version`, under the version guard
    /// (`expected` `None`) or as a compare-and-set on the row's version `expected` (an
    /// absent row counting as 0; `version` must be above it). Other instances are told
    /// when it wrote.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write_conditional(
        &self,
        doc: &Document,
        version: u64,
        retention_days: u32,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        let id = self.project_id().await?;
        let name = doc.name.as_str();
        let data = std::str::from_utf8(&doc.body).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let checksum = doc.checksum.to_string();
        let size = i32::try_from(doc.body.len()).unwrap_or(i32::MAX);
        let retention = i32::try_from(retention_days).unwrap_or(i32::MAX);
        let version = i64::try_from(version).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let expected = expected.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let rows = self
            .run(
                sql::WRITE_CACHE,
                &[
                    (&id, Type::INT4),
                    (&name, Type::VARCHAR),
                    (&data, Type::TEXT),
                    (&version, Type::INT8),
                    (&checksum, Type::TEXT),
                    (&doc.last_fetch, Type::TIMESTAMPTZ),
                    (&doc.last_rich_fetch, Type::TIMESTAMPTZ),
                    (&doc.saved_at, Type::TIMESTAMPTZ),
                    (&size, Type::INT4),
                    (&retention, Type::INT4),
                    (&expected, Type::INT8),
                ],
            )
            .await?;
        let row = rows.first().ok_or_else(|| StoreError::Rejected("tiercache_write_cache answered no row".into()))?;
        let outcome = CasOutcome {
            written: row.get(0),
            row_version: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            row_checksum: row.get(2),
        };
        if outcome.written {
            self.notify(id).await;
        }
        Ok(outcome)
    }

    /// Writes an acknowledged save: a compare-and-set on `known`, the row version this
    /// instance last knew (`None`: nothing known, the version guard instead). When the
    /// row moved meanwhile (another instance saved), the save is written as the next
    /// version above the row, on condition that the row is still the one just seen:
    /// last acknowledged save wins, and the outcome says which version it got. A row
    /// that already holds this document (a retry of a write that went through) is done.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write(
        &self,
        doc: &Document,
        retention_days: u32,
        known: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        let checksum = doc.checksum.to_string();
        let original = doc.version;
        // Known at or above this save's version: Postgres confirmed it (or a newer one)
        // already, and the version guard says which; otherwise a compare-and-set on it.
        let mut expected = known.filter(|k| *k < original);
        let mut version = original;
        // Bounded: each round either writes or learns a newer row.
        for _ in 0..5 {
            let outcome = self.write_conditional(doc, version, retention_days, expected).await?;
            let row_version = outcome.row_version;
            if outcome.written || (outcome.row_checksum.as_deref() == Some(&checksum) && row_version >= original) {
                let version = if outcome.written { version } else { row_version };
                return Ok(if version == original { WriteOutcome::Written } else { WriteOutcome::Rebased { version } });
            }
            if row_version > 0 && self.written_before(doc, &checksum, original).await? {
                tracing::info!(
                    cache = %doc.name, version = original, row_version,
                    "this save reached Postgres at an earlier attempt and was replaced since; not written again"
                );
                return Ok(WriteOutcome::Superseded { version: row_version });
            }
            if row_version > 0 {
                tracing::warn!(
                    cache = %doc.name,
                    version = original,
                    row_version,
                    "Postgres holds another version than this instance knew; writing this save above it"
                );
            }
            // Deleted in between (0): inserted again.
            expected = Some(row_version);
            version = version.max(row_version + 1);
        }
        Err(StoreError::Transient(format!("{}: the row kept moving during the write", doc.name)))
    }

    /// Whether the audit records `doc` (by its checksum) written at `version` or above: a
    /// save sent again after its answer was lost must not overwrite what replaced it.
    async fn written_before(&self, doc: &Document, checksum: &str, version: u64) -> Result<bool, StoreError> {
        let id = self.project_id().await?;
        let name = doc.name.as_str();
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let params = [
            (&id as _, Type::INT4),
            (&name as _, Type::VARCHAR),
            (&checksum as _, Type::TEXT),
            (&version as _, Type::INT8),
        ];
        Ok(!self.run(sql::WRITE_AUDITED, &params).await?.is_empty())
    }

    /// Deletes the row of `name` if its version is at most `version` (the newest this
    /// instance knew when the cache was deleted); no row, or a newer one, is fine.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete(&self, name: &CacheName, version: u64) -> Result<(), StoreError> {
        let id = self.project_id().await?;
        let name = name.as_str();
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let rows = self.run(sql::DELETE, &[(&id, Type::INT4), (&name, Type::VARCHAR), (&version, Type::INT8)]).await?;
        if rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            self.notify(id).await;
        }
        Ok(())
    }

    /// Records in the row that the upstream was checked at `checked_at` and had nothing
    /// new for `doc` (an HTTP 304): its `last_fetch` moves forward while it holds exactly
    /// that version and checksum. Answers whether the row moved.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_check(&self, doc: &Document, checked_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = self.project_id().await?;
        let name = doc.name.as_str();
        let version = i64::try_from(doc.version).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let checksum = doc.checksum.to_string();
        let params = [
            (&id as _, Type::INT4),
            (&name as _, Type::VARCHAR),
            (&version as _, Type::INT8),
            (&checksum as _, Type::TEXT),
            (&checked_at as _, Type::TIMESTAMPTZ),
        ];
        let rows = self.run(sql::RECORD_CHECK, &params).await?;
        let moved = rows.first().is_some_and(|r| r.get::<_, bool>(0));
        if moved {
            self.notify(id).await;
        }
        Ok(moved)
    }

    /// Retention, first step: stores the configured caches' `retention_days` in their
    /// rows, then answers the rows of caches no longer configured.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn retention_rows(&self, configured: &[(CacheName, u32)]) -> Result<Vec<UnconfiguredRow>, StoreError> {
        let id = self.project_id().await?;
        let names: Vec<&str> = configured.iter().map(|(n, _)| n.as_str()).collect();
        let days: Vec<i32> = configured.iter().map(|(_, d)| i32::try_from(*d).unwrap_or(i32::MAX)).collect();
        let params = [(&id as _, Type::INT4), (&names as _, Type::TEXT_ARRAY), (&days as _, Type::INT4_ARRAY)];
        self.run(sql::STORE_RETENTION, &params).await?;
        let rows = self.run(sql::UNCONFIGURED_ROWS, &[(&id, Type::INT4), (&names, Type::TEXT_ARRAY)]).await?;
        Ok(rows.iter().filter_map(to_unconfigured).collect())
    }

    /// Retention: purges rows of caches not in `keep` past their own retention, and
    /// answers them.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn purge_unconfigured(&self, keep: &[CacheName]) -> Result<Vec<UnconfiguredRow>, StoreError> {
        let id = self.project_id().await?;
        let keep: Vec<&str> = keep.iter().map(CacheName::as_str).collect();
        let rows = self.run(sql::PURGE_UNCONFIGURED, &[(&id, Type::INT4), (&keep, Type::TEXT_ARRAY)]).await?;
        if !rows.is_empty() {
            self.notify(id).await;
        }
        Ok(rows.iter().filter_map(to_unconfigured).collect())
    }

    /// Saves a source's state (e.g. a rotated refresh token) for the project.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn save_state(&self, key: &str, state: &serde_json::Value) -> Result<(), StoreError> {
        let id = self.project_id().await?;
        let text = state.to_string();
        self.run(sql::SAVE_STATE, &[(&id, Type::INT4), (&key, Type::VARCHAR), (&text, Type::TEXT)]).await.map(drop)
    }

    /// Deletes a source's state.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        let id = self.project_id().await?;
        self.run(sql::DELETE_STATE, &[(&id, Type::INT4), (&key, Type::VARCHAR)]).await.map(drop)
    }

    /// Tells the project's other instances that a row changed: an empty NOTIFY on its
    /// channel, in a transaction of its own after the write committed. A hint only:
    /// when it fails (the notification queue full, NOTIFY not allowed) it is logged and
    /// counted (`tiercache_notify_failures_total`), and the others still see the write
    /// at their next read of the row heads.
    async fn notify(&self, project_id: i32) {
        let channel = channel(project_id);
        let payload = "";
        let sent = self.run(sql::NOTIFY, &[(&channel, Type::TEXT), (&payload, Type::TEXT)]).await;
        if let Err(e) = sent {
            self.inner.metrics.notify_failures.inc();
            tracing::warn!(
                tier = "postgres", error = %e,
                "could not notify the other instances of a write; they see it at their next read of the row heads"
            );
        }
    }
}
