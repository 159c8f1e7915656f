//! The listener's statements: the store owns every query text, the listener only its
//! LISTEN session (which has to be a connection of its own, outside the pool).
//!
//! Each function runs on the listener's client, unnamed (`query_typed`), so it works on
//! any connection the listener could make.

use super::sql;
use crate::domain::CacheName;
use std::collections::HashMap;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Error};

/// The NOTIFY channel of the project with id `project_id` (the trigger in schema.sql).
pub fn channel(project_id: i32) -> String {
    format!("tiercache_{project_id}")
}

/// The project's id; `None` while the project is not registered.
///
/// # Errors
/// The driver's error.
pub async fn project_id(client: &Client, project: &str) -> Result<Option<i32>, Error> {
    let rows = client.query_typed(sql::PROJECT_ID, &[(&project, Type::VARCHAR)]).await?;
    Ok(rows.first().map(|r| r.get::<_, i32>(0)))
}

/// `LISTEN` on `channel` (a name made by [`channel`], so safe to splice in).
///
/// # Errors
/// The driver's error.
pub async fn listen(client: &Client, channel: &str) -> Result<(), Error> {
    client.batch_execute(&format!("LISTEN {channel}")).await
}

/// Sends `payload` on `channel`.
///
/// # Errors
/// The driver's error.
pub async fn notify(client: &Client, channel: &str, payload: &str) -> Result<(), Error> {
    client.query_typed(sql::NOTIFY, &[(&channel, Type::TEXT), (&payload, Type::TEXT)]).await.map(drop)
}

/// Every row's version, by cache (rows with a name that is not a cache name are skipped).
///
/// # Errors
/// The driver's error.
pub async fn row_versions(client: &Client, project_id: i32) -> Result<HashMap<CacheName, u64>, Error> {
    let rows = client.query_typed(sql::ROW_VERSIONS, &[(&project_id, Type::INT4)]).await?;
    let mut versions = HashMap::new();
    for row in rows {
        let Ok(name) = CacheName::parse(row.get::<_, &str>(0)) else { continue };
        versions.insert(name, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
    }
    Ok(versions)
}

/// Whether the project's audit records a delete of `name` at `version` or above.
///
/// # Errors
/// The driver's error.
pub async fn delete_audited(client: &Client, project_id: i32, name: &CacheName, version: u64) -> Result<bool, Error> {
    let version = i64::try_from(version).unwrap_or(i64::MAX);
    let rows = client
        .query_typed(
            sql::DELETE_AUDITED,
            &[(&project_id, Type::INT4), (&name.as_str(), Type::VARCHAR), (&version, Type::INT8)],
        )
        .await?;
    Ok(!rows.is_empty())
}
