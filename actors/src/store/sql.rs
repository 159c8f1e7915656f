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
/// the files before fetching only the rows it needs, and what every instance reads
/// every few seconds to follow the others (a few hundred bytes).
pub const READ_HEADS: &str =
    "SELECT cache_type, version, checksum, last_fetch FROM cache_storage WHERE project_id = $1";

/// Writes one cache's row through the schema's function, which checks that this role
/// is the project's. `$11` NULL: the version guard (written only above the row's
/// version); `$11` N: compare-and-set (written only if the row is at version N, an
/// absent row counting as 0). Answers whether it wrote, and the row's version (0: no
/// row) and checksum after the call.
pub const WRITE_CACHE: &str = "SELECT written, row_version, row_checksum FROM tiercache_write_cache(\
     $1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, $11)";

/// DELETE of one cache's row at version $3 or below (through the schema's function): a
/// save made elsewhere after what the deleting instance knew stays.
pub const DELETE: &str = "SELECT tiercache_delete_cache($1, $2, $3)";

/// A check of the upstream that changed nothing: the row's `last_fetch` moves forward
/// while it holds exactly this version ($3) and checksum ($4).
pub const RECORD_CHECK: &str = "SELECT tiercache_record_check($1, $2, $3, $4, $5)";

/// Retention: stores each configured cache's `retention_days` ($2 names, $3 days) in
/// its row now, not only at its next save.
pub const STORE_RETENTION: &str = "SELECT tiercache_store_retention($1, $2, $3)";

/// Retention: the rows of caches no longer configured ($2: the configured names).
pub const UNCONFIGURED_ROWS: &str = "SELECT cache_type, saved_at, retention_days FROM cache_storage \
     WHERE project_id = $1 AND NOT (cache_type = ANY($2))";

/// Retention: deletes the rows of caches no longer configured unsaved for their own
/// `retention_days`. A row saved meanwhile is never deleted: the date is checked there.
pub const PURGE_UNCONFIGURED: &str = "SELECT purged_cache, purged_saved_at, purged_retention_days \
     FROM tiercache_purge_unconfigured($1, $2)";

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

/// Writes or replaces a source's state.
pub const SAVE_STATE: &str = "SELECT tiercache_save_state($1, $2, $3::text::jsonb)";

/// Forgets a source's state (a Strava athlete's deauthorization).
pub const DELETE_STATE: &str = "SELECT tiercache_delete_state($1, $2)";

/// A source's state.
pub const LOAD_STATE: &str = "SELECT state::text FROM source_state WHERE project_id = $1 AND state_key = $2";

/// Whether the project's audit records a delete of a cache ($2) at a version ($3) or
/// above.
pub const DELETE_AUDITED: &str = "SELECT 1 FROM cache_audit WHERE project_id = $1 AND cache_type = $2 \
     AND operation = 'DELETE' AND old_version >= $3 LIMIT 1";

/// Whether the project's audit records a write of a cache ($2) with this checksum ($3)
/// at a version ($4) or above: a save whose answer was lost went through.
pub const WRITE_AUDITED: &str = "SELECT 1 FROM cache_audit WHERE project_id = $1 AND cache_type = $2 \
     AND operation <> 'DELETE' AND new_checksum = $3 AND new_version >= $4 LIMIT 1";

/// A hint on a channel ($1): after a write commits, to the project's other instances;
/// and the listener's probe through its own channel.
pub const NOTIFY: &str = "SELECT pg_notify($1, $2)";
