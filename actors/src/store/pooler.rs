//! Detects a transaction pooler (PgBouncer in transaction mode, Supabase's pooler on
//! port 6543) in front of Postgres. Behind one, named prepared statements, session
//! advisory locks (refresh leadership) and LISTEN silently do the wrong thing, so
//! `postgres.statement_cache = true` must not be used there.
//!
//! The test: on a direct or session-pooled connection a client keeps one backend for
//! its whole life. Client A asks for its backend's pid twice (a round-robin pooler moves
//! it in between); then client B opens a transaction (taking the server connection A
//! just released, if a last-released-first pooler sits between) and A asks again. Two different pids for one client connection can only come from a pooler
//! that hands out server connections per transaction. A plain server never gives a
//! false positive; a pooler may, by chance, hand A the same backend twice, so the
//! test is tried a few times.

use super::connect::{driver_config, ConnectConfig};
use tokio_postgres::{Client, SimpleQueryMessage};

/// How many times the test is tried before concluding there is no pooler.
const TRIES: usize = 5;

async fn backend_pid(client: &Client, sql: &str) -> Result<Option<i32>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|pid| pid.parse().ok()),
        _ => None,
    }))
}

async fn connect(cfg: &ConnectConfig) -> Result<Client, String> {
    let (mut config, tls) = driver_config(cfg).map_err(|e| e.to_string())?;
    config.application_name("tiercache-pooler-check");
    let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
    // A connection's driver, the documented exception to the guarded forms: it must be
    // polled on a task of its own and holds none of our state.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `Some((first, second))`: one client connection ran two transactions on the
/// backends with these pids, so a transaction pooler sits in front of Postgres.
///
/// # Errors
/// Postgres (or the pooler) cannot be reached or answered an error: nothing is known.
pub async fn transaction_pooled(cfg: &ConnectConfig) -> Result<Option<(i32, i32)>, String> {
    let a = connect(cfg).await?;
    let b = connect(cfg).await?;
    let pid = "SELECT pg_backend_pid()";
    let differ = |x: Option<i32>, y: Option<i32>| match (x, y) {
        (Some(x), Some(y)) if x != y => Some((x, y)),
        _ => None,
    };
    for _ in 0..TRIES {
        // A pooler that hands out idle server connections in turn (round robin) moves
        // A between two statements on its own...
        let first = backend_pid(&a, pid).await.map_err(|e| e.to_string())?;
        let again = backend_pid(&a, pid).await.map_err(|e| e.to_string())?;
        if let Some(pids) = differ(first, again) {
            return Ok(Some(pids));
        }
        // ...one that reuses the last released first (LIFO) hands A's backend to B.
        let _ = backend_pid(&b, &format!("BEGIN; {pid}")).await.map_err(|e| e.to_string())?;
        let third = backend_pid(&a, pid).await.map_err(|e| e.to_string())?;
        b.simple_query("ROLLBACK").await.map_err(|e| e.to_string())?;
        if let Some(pids) = differ(again, third) {
            return Ok(Some(pids));
        }
    }
    Ok(None)
}
