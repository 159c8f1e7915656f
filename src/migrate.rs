//! `tiercache migrate`: applies the embedded `schema.sql` to the configured Postgres.
//! The script is idempotent and takes its own advisory lock, so running it twice, or
//! from two machines at once, is safe.

use crate::config::Settings;
use crate::exit::{Fatal, CONFIG, UNAVAILABLE};
use crate::wiring;
use tiercache_actors::store::{connect_pool, connect_target};

/// The schema this build expects.
pub const SCHEMA: &str = include_str!("../schema.sql");

/// Connects with the daemon's own settings and runs the schema in one batch.
///
/// # Errors
/// Exit 78 when Postgres is not configured, 69 when it cannot be reached or refuses.
pub fn run(settings: &Settings) -> Result<(), Fatal> {
    let Some(pg) = wiring::postgres_config(settings)? else {
        return Err(Fatal::new(CONFIG, "config error: postgres.enabled: migrate needs the Postgres tier enabled"));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let (pool, _tls) =
            connect_pool(&pg.connect).map_err(|e| Fatal::new(CONFIG, format!("config error: postgres.url: {e}")))?;
        let client = pool.get().await.map_err(|e| {
            let at = connect_target(&pg.connect);
            Fatal::new(UNAVAILABLE, format!("migrate: cannot connect to Postgres at {at}: {e}"))
        })?;
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| Fatal::new(UNAVAILABLE, format!("migrate: schema.sql failed: {}", describe(&e))))?;
        println!("schema.sql applied");
        Ok(())
    })
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
