//! At startup, `postgres.statement_cache = true` in front of a transaction pooler is a
//! configuration error: named prepared statements, refresh leadership and LISTEN would
//! all fail there, some of them silently.

use crate::exit::{Fatal, CONFIG};
use std::time::Duration;
use tiercache_actors::store::pooler::transaction_pooled;
use tiercache_actors::store::ConnectConfig;

/// Refuses to start (exit 78 naming `postgres.statement_cache`) when a transaction
/// pooler is detected. Postgres not answering within `limit` proves nothing: the
/// startup sync then goes on as usual (and retries in the background).
///
/// # Errors
/// A [`Fatal`] with exit 78 when a transaction pooler answers.
pub async fn refuse_transaction_pooler(connect: &ConnectConfig, limit: Duration) -> Result<(), Fatal> {
    if !connect.statement_cache {
        return Ok(());
    }
    match tokio::time::timeout(limit, transaction_pooled(connect)).await {
        Ok(Ok(Some((first, second)))) => Err(Fatal::new(
            CONFIG,
            format!(
                "config error: postgres.statement_cache: postgres.url leads to a transaction pooler (one \
                 connection's transactions ran on backends {first} and {second}); set \
                 postgres.statement_cache = false, or connect to the database directly or through a \
                 session pooler (Supabase: port 5432)"
            ),
        )),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "transaction pooler check not possible now");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}
