//! The statements the store runs, and how it runs them: prepared and cached on direct
//! connections, unnamed (`query_typed`) behind a transaction pooler.

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

/// This project's id.
pub const PROJECT_ID: &str = "SELECT id FROM projects WHERE project_name = $1";

/// Registers the project with the connecting role as its `db_role` (works for the
/// schema's owner; a least-privilege role needs the row made for it, docs/database.md).
pub const REGISTER_PROJECT: &str = "INSERT INTO projects (project_name, db_role) VALUES ($1, current_user) \
     ON CONFLICT (project_name) DO NOTHING RETURNING id";

const COLUMNS: &str = "cache_type, data::text, version, checksum, last_fetch, last_rich_fetch, saved_at";

/// One cache.
pub fn read_one() -> String {
    format!("SELECT {COLUMNS} FROM cache_storage WHERE project_id = $1 AND cache_type = $2")
}

/// Every cache of the project, without its data: what the startup sync compares with
/// the files before fetching only the rows it needs.
pub const READ_HEADS: &str = "SELECT cache_type, version, checksum FROM cache_storage WHERE project_id = $1";

/// The version guard: a row is only ever replaced by a higher version.
pub const UPSERT: &str = "INSERT INTO cache_storage \
     (project_id, cache_type, data, version, checksum, last_fetch, last_rich_fetch, saved_at, data_size, retention_days) \
     VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (project_id, cache_type) DO UPDATE SET \
       data = EXCLUDED.data, version = EXCLUDED.version, checksum = EXCLUDED.checksum, \
       last_fetch = EXCLUDED.last_fetch, last_rich_fetch = EXCLUDED.last_rich_fetch, \
       saved_at = EXCLUDED.saved_at, data_size = EXCLUDED.data_size, retention_days = EXCLUDED.retention_days \
     WHERE cache_storage.version < EXCLUDED.version \
     RETURNING version";

/// What the row holds when the guard refused a write.
pub const CURRENT_VERSION: &str =
    "SELECT version, checksum FROM cache_storage WHERE project_id = $1 AND cache_type = $2";

/// DELETE of one cache.
pub const DELETE: &str = "DELETE FROM cache_storage WHERE project_id = $1 AND cache_type = $2";

/// Retention: stores each configured cache's `retention_days` ($2 names, $3 days) in
/// its row now, not only at its next save.
pub const STORE_RETENTION: &str = "UPDATE cache_storage SET retention_days = c.days \
     FROM unnest($2::text[], $3::int4[]) AS c(name, days) \
     WHERE project_id = $1 AND cache_type = c.name AND retention_days <> c.days";

/// Retention: the rows of caches no longer configured ($2: the configured names).
pub const UNCONFIGURED_ROWS: &str = "SELECT cache_type, saved_at, retention_days FROM cache_storage \
     WHERE project_id = $1 AND NOT (cache_type = ANY($2))";

/// Retention: deletes the rows of caches no longer configured unsaved for their own
/// `retention_days`. A row saved meanwhile is never deleted: the date is checked here.
pub const PURGE_UNCONFIGURED: &str = "DELETE FROM cache_storage WHERE project_id = $1 \
     AND NOT (cache_type = ANY($2)) AND saved_at < now() - make_interval(days => retention_days) \
     RETURNING cache_type, saved_at, retention_days";

/// Runs `sql` with typed parameters.
///
/// # Errors
/// The driver's error.
pub async fn query(
    client: &deadpool_postgres::Client,
    cached: bool,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if cached {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let statement = client.prepare_typed_cached(sql, &types).await?;
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        client.query(&statement, &values).await
    } else {
        client.query_typed(sql, params).await
    }
}

/// Upsert of a source's state.
pub const SAVE_STATE: &str =
    "INSERT INTO source_state (project_id, state_key, state) VALUES ($1, $2, $3::text::jsonb) \
     ON CONFLICT (project_id, state_key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()";

/// Forgets a source's state (a Strava athlete's deauthorization).
pub const DELETE_STATE: &str = "DELETE FROM source_state WHERE project_id = $1 AND state_key = $2";

/// A source's state.
pub const LOAD_STATE: &str = "SELECT state::text FROM source_state WHERE project_id = $1 AND state_key = $2";

/// Listener: every row's version, read back after a notification (its payload is never
/// trusted).
pub const ROW_VERSIONS: &str = "SELECT cache_type, version FROM cache_storage WHERE project_id = $1";

/// Listener: whether the project's audit records a delete of a cache ($2) at a version
/// ($3) or above.
pub const DELETE_AUDITED: &str = "SELECT 1 FROM cache_audit WHERE project_id = $1 AND cache_type = $2 \
     AND operation = 'DELETE' AND old_version >= $3 LIMIT 1";

/// Listener: a probe through its own channel ($1) proves notifications reach its session.
pub const NOTIFY: &str = "SELECT pg_notify($1, $2)";
