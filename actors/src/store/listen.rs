//! The listener's statements: the store owns every query text, the listener only its
//! LISTEN session (which has to be a connection of its own, outside the pool). What it
//! reads after a hint (the row heads, the audit's deletes) goes through the pool.
//!
//! Each function runs on the listener's client, unnamed (`query_typed`), so it works on
//! any connection the listener could make.

use super::sql;
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
