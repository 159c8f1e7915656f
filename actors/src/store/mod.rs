//! The Postgres ("supabase") tier: the source of truth, shared by every instance of a
//! project.
//!
//! The actor owns the connection pool and the project's id. Every statement is scoped
//! to the project; writes carry the version guard of SPEC §7 (a row never moves
//! backwards, and an acknowledged save that meets an equal or higher row with another
//! checksum is given a version above it). Rows are verified like files: a row whose
//! data does not hash to its checksum is never served.

mod actor;
mod connect;
mod handle;
mod handlers;
pub mod listen;
mod messages;
pub mod pooler;
mod sql;
pub mod tls;

pub use connect::{driver_config, pool as connect_pool, target as connect_target, ConnectConfig, ConnectOptions};
pub use handle::StoreHandle;
pub use messages::{DeleteRow, Ping, PurgeUnconfigured, ReadHeads, ReadRow, RetentionRows, WriteOutcome, WriteRow};
pub use tls::TlsMode;

use crate::domain::{canonical, CacheName, Checksum, Document};
use crate::supervisor::{ActorPanicked, FailureReporter};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Store.label();

/// What went wrong talking to Postgres, sorted by what the caller should do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Cannot reach Postgres, or it is restarting, stalled or timed out: retry later.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// A transient conflict (serialization failure, deadlock): retry.
    #[error("postgres transient error: {0}")]
    Transient(String),
    /// Postgres refuses this for good (constraint, permission, bad data): do not retry
    /// for ever.
    #[error("postgres rejected the statement: {0}")]
    Rejected(String),
    /// The project is not registered and cannot be registered by this role.
    #[error("project {0:?} is not in the projects table and this role cannot add it (docs/database.md)")]
    NoProject(String),
    /// The actor failed on this request.
    #[error(transparent)]
    Panicked(#[from] ActorPanicked),
}

impl StoreError {
    /// The same error, saying it happened connecting to `connect`'s host, port or socket.
    fn connecting_to(self, connect: &ConnectConfig) -> Self {
        let at = |detail: String| format!("cannot connect to {}: {detail}", connect::target(connect));
        match self {
            Self::Unavailable(d) => Self::Unavailable(at(d)),
            Self::Transient(d) => Self::Transient(at(d)),
            Self::Rejected(d) => Self::Rejected(at(d)),
            other => other,
        }
    }

    /// Whether retrying later can help. An unregistered project is not the save's
    /// fault and an operator's fix away (docs/database.md): its saves wait for it rather
    /// than going to the dead letter.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Transient(_) | Self::NoProject(_) | Self::Panicked(_))
    }
}

/// An error with its causes: tokio-postgres says only "error performing TLS handshake"
/// and keeps why (an unknown issuer, a name mismatch) in its source.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn classify(e: &tokio_postgres::Error) -> StoreError {
    let text = with_causes(e);
    let detail = e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or(text);
    match e.code() {
        None => StoreError::Unavailable(detail),
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            StoreError::Transient(detail)
        }
        // A prepared statement that vanished: a transaction pooler with
        // `statement_cache = true`. The configuration is wrong, not the data: never
        // dead-letter a good save for it.
        Some(c) if *c == SqlState::INVALID_SQL_STATEMENT_NAME => StoreError::Unavailable(format!(
            "{detail} (behind a transaction pooler set postgres.statement_cache = false)"
        )),
        Some(c) => {
            let class = &c.code()[..2];
            // 08 connection, 53 resources, 57 operator intervention (shutdown, cancel,
            // statement timeout), 58 system errors: all pass.
            if matches!(class, "08" | "53" | "57" | "58" | "XX") {
                StoreError::Unavailable(detail)
            } else {
                StoreError::Rejected(detail)
            }
        }
    }
}

/// A failure to get a pooled connection: the error names where it tried to connect.
fn pool_error(e: deadpool_postgres::PoolError, connect: &ConnectConfig) -> StoreError {
    let error = match e {
        deadpool_postgres::PoolError::Backend(e) => classify(&e),
        other => StoreError::Unavailable(other.to_string()),
    };
    error.connecting_to(connect)
}

/// What the actor needs to start.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Connection settings.
    pub connect: ConnectConfig,
    /// `project`.
    pub project: String,
}

/// The leadership session and the locks it holds.
#[derive(Default)]
struct Leader {
    client: Option<tokio_postgres::Client>,
    held: std::collections::HashSet<CacheName>,
}

/// The store's state: shared with its in-flight futures, never with other actors.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    reporter: FailureReporter,
}

struct Inner {
    pool: Pool,
    /// Dedicated session for refresh leadership (session-level advisory locks).
    leader: tokio::sync::Mutex<Leader>,
    connect: ConnectConfig,
    tls: MakeRustlsConnect,
    project: String,
    project_id: OnceCell<i32>,
    statement_cache: bool,
    statement_timeout: Duration,
}

/// A row of a cache no longer configured, as the retention purge saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnconfiguredRow {
    /// The cache, no longer configured.
    pub name: CacheName,
    /// When it was last saved.
    pub saved_at: DateTime<Utc>,
    /// The row's own retention.
    pub retention_days: u32,
}

fn to_unconfigured(r: &Row) -> Option<UnconfiguredRow> {
    Some(UnconfiguredRow {
        name: CacheName::parse(r.get::<_, &str>(0)).ok()?,
        saved_at: r.get(1),
        retention_days: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
    })
}

/// What a row holds, without its data: enough to tell whether a file matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowHead {
    /// The cache.
    pub name: CacheName,
    /// The row's version.
    pub version: u64,
    /// The ETag a document with this version and checksum has.
    pub etag: String,
}

fn to_head(row: &Row) -> Result<RowHead, String> {
    let name: String = row.get(0);
    let name = CacheName::parse(&name).map_err(|e| format!("bad cache_type {name:?}: {e}"))?;
    let version: i64 = row.get(1);
    let version = u64::try_from(version).map_err(|_| format!("{name}: bad version {version}"))?;
    let recorded: String = row.get(2);
    let checksum = Checksum::parse(&recorded).ok_or_else(|| format!("{name}: bad checksum {recorded:?}"))?;
    Ok(RowHead { etag: checksum.etag(version), name, version })
}

fn to_document(row: &Row) -> Result<Document, String> {
    let name: String = row.get(0);
    let name = CacheName::parse(&name).map_err(|e| format!("bad cache_type {name:?}: {e}"))?;
    let data: &str = row.get(1);
    let version: i64 = row.get(2);
    let recorded: String = row.get(3);
    let recorded = Checksum::parse(&recorded).ok_or_else(|| format!("{name}: bad checksum {recorded:?}"))?;
    let body = canonical::canonicalize_str(data).map_err(|e| format!("{name}: bad data: {e}"))?;
    let computed = Checksum::of(&body);
    if computed != recorded {
        return Err(format!("{name}: checksum mismatch: recorded {recorded}, computed {computed}"));
    }
    let version = u64::try_from(version).map_err(|_| format!("{name}: bad version {version}"))?;
    Ok(Document::new(
        name,
        version,
        recorded,
        row.get::<_, Option<DateTime<Utc>>>(4),
        row.get::<_, Option<DateTime<Utc>>>(5),
        row.get::<_, DateTime<Utc>>(6),
        body.into(),
    ))
}

impl Store {
    /// A store for `config` (no connection is made until the first request).
    ///
    /// # Errors
    /// A message about the URL or TLS settings.
    pub fn new(config: StoreConfig, reporter: FailureReporter) -> Result<Self, String> {
        let (pool, tls) = connect::pool(&config.connect)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                leader: tokio::sync::Mutex::new(Leader::default()),
                connect: config.connect.clone(),
                tls,
                project: config.project,
                project_id: OnceCell::new(),
                statement_cache: config.connect.options.statement_cache,
                statement_timeout: config.connect.options.statement_timeout,
            }),
            reporter,
        })
    }

    /// Runs one statement with the client-side timeout; a timed-out statement is
    /// cancelled on the server so it does not hold locks.
    async fn run(
        &self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, StoreError> {
        let inner = &self.inner;
        let client = inner.pool.get().await.map_err(|e| pool_error(e, &inner.connect))?;
        let limit = inner.statement_timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, sql::query(&client, inner.statement_cache, sql, params)).await {
            Ok(result) => result.map_err(|e| classify(&e)),
            Err(_) => {
                let cancel = client.cancel_token();
                let tls = inner.tls.clone();
                tokio::spawn(async move {
                    let _ = cancel.cancel_query(tls).await;
                });
                // This connection may be mid-protocol: do not give it back to the pool.
                let _ = deadpool_postgres::Object::take(client);
                Err(StoreError::Unavailable(format!("statement timed out after {limit:?}")))
            }
        }
    }

    async fn project_id(&self) -> Result<i32, StoreError> {
        self.inner
            .project_id
            .get_or_try_init(|| async {
                let project = self.inner.project.as_str();
                let rows = self.run(sql::PROJECT_ID, &[(&project, Type::VARCHAR)]).await?;
                if let Some(row) = rows.first() {
                    return Ok(row.get::<_, i32>(0));
                }
                match self.run(sql::REGISTER_PROJECT, &[(&project, Type::VARCHAR)]).await {
                    Ok(rows) if !rows.is_empty() => {
                        tracing::info!(project, "registered the project in Postgres");
                        Ok(rows[0].get::<_, i32>(0))
                    }
                    // Another instance registered it in between: read it again.
                    Ok(_) => {
                        let rows = self.run(sql::PROJECT_ID, &[(&project, Type::VARCHAR)]).await?;
                        rows.first()
                            .map(|r| r.get::<_, i32>(0))
                            .ok_or_else(|| StoreError::NoProject(project.to_owned()))
                    }
                    Err(StoreError::Rejected(_)) => Err(StoreError::NoProject(project.to_owned())),
                    Err(e) => Err(e),
                }
            })
            .await
            .copied()
    }

    /// One cache's row, verified; a corrupt row is logged and reads as absent.
    ///
    /// Verification (re-canonicalising and hashing the data, ~10 ms for 1 MB) runs on
    /// the blocking pool, not on the thread that runs the actors.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn read_one(&self, name: &CacheName) -> Result<Option<Document>, StoreError> {
        let id = self.project_id().await?;
        let name_str = name.as_str();
        let rows = self.run(&sql::read_one(), &[(&id, Type::INT4), (&name_str, Type::VARCHAR)]).await?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let verified = tokio::task::spawn_blocking(move || to_document(&row))
            .await
            .map_err(|e| StoreError::Unavailable(format!("row verification failed: {e}")))?;
        match verified {
            Ok(doc) => Ok(Some(doc)),
            Err(e) => {
                tracing::error!(tier = "postgres", alert = true, error = %e, "corrupt row in Postgres; not served");
                Ok(None)
            }
        }
    }

    /// Name, version and ETag of every row of the project, without the data. A row
    /// whose name or checksum column is malformed is logged and left out.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn read_heads(&self) -> Result<Vec<RowHead>, StoreError> {
        let id = self.project_id().await?;
        let rows = self.run(sql::READ_HEADS, &[(&id, Type::INT4)]).await?;
        Ok(rows
            .iter()
            .filter_map(|row| match to_head(row) {
                Ok(head) => Some(head),
                Err(e) => {
                    tracing::error!(tier = "postgres", alert = true, error = %e, "corrupt row in Postgres; not served");
                    None
                }
            })
            .collect())
    }

    /// Writes `doc` under the version guard. If the row already holds an equal or
    /// higher version with another checksum, the document is written as the next
    /// version above the row (the returned outcome says which).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write(&self, doc: &Document, retention_days: u32) -> Result<WriteOutcome, StoreError> {
        let id = self.project_id().await?;
        let name = doc.name.as_str();
        let data = std::str::from_utf8(&doc.body).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let checksum = doc.checksum.to_string();
        let size = i32::try_from(doc.body.len()).unwrap_or(i32::MAX);
        let retention = i32::try_from(retention_days).unwrap_or(i32::MAX);
        let mut version = i64::try_from(doc.version).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let original = version;
        // Bounded: each round either writes or learns a higher row version.
        for _ in 0..5 {
            let rows = self
                .run(
                    sql::UPSERT,
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
                    ],
                )
                .await?;
            if !rows.is_empty() {
                return Ok(if version == original {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Rebased { version: version as u64 }
                });
            }
            let current = self.run(sql::CURRENT_VERSION, &[(&id, Type::INT4), (&name, Type::VARCHAR)]).await?;
            let Some(row) = current.first() else { continue }; // deleted in between: insert again
            let (row_version, row_checksum): (i64, String) = (row.get(0), row.get(1));
            if row_checksum == checksum && row_version >= version {
                return Ok(if row_version == original {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Rebased { version: row_version as u64 }
                });
            }
            tracing::warn!(
                cache = name,
                version = original,
                row_version,
                "Postgres holds an equal or higher version with other data; writing this save above it"
            );
            version = row_version + 1;
        }
        Err(StoreError::Transient(format!("{name}: the row kept moving during the write")))
    }

    /// Deletes the row of `name` (no row is fine).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete(&self, name: &CacheName) -> Result<(), StoreError> {
        let id = self.project_id().await?;
        let name = name.as_str();
        self.run(sql::DELETE, &[(&id, Type::INT4), (&name, Type::VARCHAR)]).await.map(drop)
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
        Ok(rows.iter().filter_map(to_unconfigured).collect())
    }

    /// Whether this instance leads the refreshes of `name`: it holds (or just took) the
    /// session-level advisory lock `tiercache:PROJECT:NAME` on its dedicated connection.
    /// A holder that dies releases the lock with its connection.
    ///
    /// # Errors
    /// [`StoreError`] when Postgres cannot be reached (no one refreshes then; the caller
    /// decides).
    pub async fn try_lead(&self, name: &CacheName) -> Result<bool, StoreError> {
        let mut leader = self.inner.leader.lock().await;
        if leader.client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            leader.held.clear();
            let (config, tls) = connect::driver_config(&self.inner.connect).map_err(StoreError::Rejected)?;
            let (client, connection) =
                config.connect(tls).await.map_err(|e| classify(&e).connecting_to(&self.inner.connect))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            leader.client = Some(client);
        }
        if leader.held.contains(name) {
            return Ok(true);
        }
        let key = format!("tiercache:{}:{}", self.inner.project, name);
        let client = leader.client.as_ref().expect("connected above");
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] = [(&key, Type::TEXT)];
        let query = client.query_typed("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &params);
        let rows = tokio::time::timeout(self.inner.statement_timeout, query)
            .await
            .map_err(|_| StoreError::Unavailable("advisory lock timed out".into()))?
            .map_err(|e| classify(&e))?;
        let got: bool = rows.first().is_some_and(|r| r.get(0));
        if got {
            leader.held.insert(name.clone());
            tracing::info!(cache = %name, "this instance now leads the refreshes of this cache");
        }
        Ok(got)
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

    /// A source's saved state, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn load_state(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let id = self.project_id().await?;
        let rows = self.run(sql::LOAD_STATE, &[(&id, Type::INT4), (&key, Type::VARCHAR)]).await?;
        Ok(rows.first().and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
    }

    /// This project's id (resolved once).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn project(&self) -> Result<i32, StoreError> {
        self.project_id().await
    }

    /// The connection settings, for the listener's dedicated connection.
    pub fn connect_config(&self) -> &ConnectConfig {
        &self.inner.connect
    }

    /// New connection settings (SIGHUP: a rotated password): later requests use a new
    /// pool; requests in flight finish on the old one, which then closes.
    ///
    /// # Errors
    /// A message about the URL or TLS settings; the running pool is kept then.
    pub fn reconnect(&mut self, connect: ConnectConfig) -> Result<bool, String> {
        if connect == self.inner.connect {
            return Ok(false);
        }
        let (pool, tls) = connect::pool(&connect)?;
        let project_id = OnceCell::new();
        if let Some(id) = self.inner.project_id.get() {
            let _ = project_id.set(*id);
        }
        self.inner = Arc::new(Inner {
            pool,
            leader: tokio::sync::Mutex::new(Leader::default()),
            statement_cache: connect.options.statement_cache,
            statement_timeout: connect.options.statement_timeout,
            connect,
            tls,
            project: self.inner.project.clone(),
            project_id,
        });
        Ok(true)
    }

    /// Checks that Postgres answers and the project is known.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.project_id().await.map(drop)
    }
}
