//! The Postgres ("supabase") tier: the source of truth, shared by every instance of a
//! project.
//!
//! The actor owns the connection pool and the project's id. Every statement is scoped
//! to the project; every write goes through the schema's SECURITY DEFINER functions
//! (`tiercache_write_cache`, ...), which check that the connected role is the
//! project's, and carries the version guard (a row never moves backwards, and an
//! acknowledged save that meets an equal or higher row with another checksum is given a
//! version above it). After a write commits, a NOTIFY on the project's channel tells
//! the other instances (a hint only: a failure to send it is counted, never fatal).
//! Rows are verified like files: a row whose data does not hash to its checksum is
//! never served.

mod actor;
pub mod classify;
mod connect;
mod handle;
mod handlers;
pub mod listen;
mod messages;
pub mod pooler;
mod sql;
pub mod tls;
mod writes;

pub use connect::{
    driver_config, pool as connect_pool, target as connect_target, ConnectConfig, ConnectOptions, PoolError,
};
pub use handle::{ReconnectError, StoreHandle};
pub use messages::{
    DeleteRow, Ping, PurgeUnconfigured, ReadHeads, ReadRow, RecordCheck, RetentionRows, WriteOutcome, WriteRow,
};
pub use tls::TlsMode;
pub use writes::CasOutcome;

use crate::domain::{canonical, CacheName, Checksum, Document};
use crate::metrics::Metrics;
use crate::supervisor::{spawn_guarded, ActorId, ActorPanicked, FailureReporter};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_postgres::types::Type;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::Store.label();

/// What went wrong talking to Postgres, sorted by what the caller should do
/// ([`classify`] has the rules).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Cannot reach Postgres, or no answer in time: retry later.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// Postgres answers but refuses the connection or the statement for a reason an
    /// operator fixes without touching the data (a wrong password, a missing database
    /// or schema, a read-only server, a resource or a limit exhausted): retry later.
    #[error("postgres refuses: {cause} ({fix})")]
    Refused {
        /// What Postgres said, with its SQLSTATE.
        cause: String,
        /// What an operator should do.
        fix: &'static str,
    },
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
            Self::Refused { cause, fix } => Self::Refused { cause: at(cause), fix },
            Self::Transient(d) => Self::Transient(at(d)),
            Self::Rejected(d) => Self::Rejected(at(d)),
            other => other,
        }
    }

    /// Whether retrying later can help. An outage ([`Self::is_outage`]) is not the
    /// save's fault and an operator's fix away (docs/database.md): its saves wait for
    /// it rather than going to the dead letter.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Rejected(_))
    }

    /// Whether nothing can reach Postgres until it passes or an operator acts: Postgres
    /// unreachable, refusing this role or database, or the project not registered
    /// (`tiercache_postgres_up` is 0 meanwhile).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Refused { .. } | Self::NoProject(_))
    }

    /// What an operator should do about an outage; `None` for other errors.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Self::Unavailable(_) => Some(classify::FIX_UNREACHABLE),
            Self::Refused { fix, .. } => Some(fix),
            Self::NoProject(_) => Some(classify::FIX_NO_PROJECT),
            _ => None,
        }
    }

    /// The error without the fix: what went wrong, in Postgres's words.
    pub fn cause(&self) -> String {
        match self {
            Self::Refused { cause, .. } => cause.clone(),
            other => other.to_string(),
        }
    }
}

use classify::classify;

/// The project's own row refused to this role (it is no member of `tiercache_app`): an
/// operator's fix, not the data's.
fn not_a_member(e: StoreError) -> StoreError {
    match e {
        StoreError::Rejected(cause) => StoreError::Refused {
            cause,
            fix: "make the role a member of tiercache_app and register the project (docs/database.md)",
        },
        other => other,
    }
}

/// A failure to get a pooled connection: the error names where it tried to connect.
fn pool_error(e: deadpool_postgres::PoolError, connect: &ConnectConfig) -> StoreError {
    let error = match e {
        deadpool_postgres::PoolError::Backend(e) => classify(&e),
        deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable(format!("no connection within postgres.connect_timeout ({e})"))
        }
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
    metrics: Arc<Metrics>,
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

/// What a row holds, without its data: enough to tell whether a file matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowHead {
    /// The cache.
    pub name: CacheName,
    /// The row's version.
    pub version: u64,
    /// The ETag a document with this version and checksum has.
    pub etag: String,
    /// The row's `last_fetch`: moved without a new version by the leading instance's
    /// check that found nothing new (an HTTP 304), which the others follow.
    pub last_fetch: Option<DateTime<Utc>>,
}

fn to_head(row: &Row) -> Result<RowHead, String> {
    let name: String = row.get(0);
    let name = CacheName::parse(&name).map_err(|e| format!("bad cache_type {name:?}: {e}"))?;
    let version: i64 = row.get(1);
    let version = u64::try_from(version).map_err(|_| format!("{name}: bad version {version}"))?;
    let recorded: String = row.get(2);
    let checksum = Checksum::parse(&recorded).ok_or_else(|| format!("{name}: bad checksum {recorded:?}"))?;
    let last_fetch: Option<DateTime<Utc>> = row.get(3);
    Ok(RowHead { etag: checksum.etag(version), name, version, last_fetch })
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
    pub fn new(config: StoreConfig, reporter: FailureReporter, metrics: Arc<Metrics>) -> Result<Self, PoolError> {
        let (pool, tls) = connect::pool(&config.connect)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                metrics,
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
                spawn_guarded(ActorId::Store, self.reporter.clone(), async move {
                    let _ = cancel.cancel_query(tls).await;
                });
                // This connection may be mid-protocol: do not give it back to the pool.
                let _ = deadpool_postgres::Object::take(client);
                Err(StoreError::Refused {
                    cause: format!("no answer to a statement within {limit:?} (postgres.statement_timeout)"),
                    fix: classify::FIX_NO_ANSWER,
                })
            }
        }
    }

    async fn project_id(&self) -> Result<i32, StoreError> {
        self.inner
            .project_id
            .get_or_try_init(|| async {
                let project = self.inner.project.as_str();
                let rows = self.run(sql::PROJECT_ID, &[(&project, Type::VARCHAR)]).await.map_err(not_a_member)?;
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
            let (config, tls) =
                connect::driver_config(&self.inner.connect).map_err(|e| StoreError::Rejected(e.to_string()))?;
            let (client, connection) =
                config.connect(tls).await.map_err(|e| classify(&e).connecting_to(&self.inner.connect))?;
            // A connection's driver, the documented exception to the guarded forms: it
            // must be polled on a task of its own and holds none of our state.
            #[allow(clippy::disallowed_methods)]
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

    /// Whether the project's audit records a delete of `name` at `version` or above:
    /// what lets an instance drop a copy whose row is gone (a row can also be missing
    /// because it was never written).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_audited(&self, name: &CacheName, version: u64) -> Result<bool, StoreError> {
        let id = self.project_id().await?;
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let name = name.as_str();
        let params = [(&id as _, Type::INT4), (&name as _, Type::VARCHAR), (&version as _, Type::INT8)];
        Ok(!self.run(sql::DELETE_AUDITED, &params).await?.is_empty())
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
    /// [`PoolError`], about the URL or TLS settings; the running pool is kept then.
    pub fn reconnect(&mut self, connect: ConnectConfig) -> Result<bool, PoolError> {
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
            metrics: self.inner.metrics.clone(),
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

    /// Checks that Postgres answers this role and that the project is still registered
    /// under the id this store resolved (a query every time: the id itself is cached).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        let id = self.project_id().await?;
        let project = self.inner.project.as_str();
        let rows = self.run(sql::PROJECT_ID, &[(&project, Type::VARCHAR)]).await.map_err(not_a_member)?;
        match rows.first().map(|r| r.get::<_, i32>(0)) {
            Some(found) if found == id => Ok(()),
            Some(found) => Err(StoreError::Refused {
                cause: format!("project {project:?} was registered again (id {found}, was {id})"),
                fix: "restart the daemon, so that it uses the project's new row",
            }),
            None => Err(StoreError::NoProject(project.to_owned())),
        }
    }
}
