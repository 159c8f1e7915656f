//! `tiercache migrate`: applies the embedded `schema.sql` to the configured Postgres.
//! The script is idempotent and takes its own advisory lock, so running it twice, or
//! from two machines at once, is safe.
//!
//! The script waits at most 2 s for any lock (its `lock_timeout`), so the writers that
//! queue behind a migration waiting for a lock wait no longer than that. While another
//! session holds what it needs (the migration's advisory lock, or a table lock), the
//! script is tried again until `--wait` (default [`DEFAULT_LOCK_WAIT`]) has passed,
//! saying on stderr which sessions hold it; then it gives up with exit 75.

use crate::config::Settings;
use crate::exit::{Fatal, CONFIG, TEMPFAIL, UNAVAILABLE};
use crate::wiring;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiercache_actors::store::{connect_pool, connect_target};
use tokio_postgres::error::SqlState;

/// The schema this build expects.
pub(crate) const SCHEMA: &str = include_str!("../schema.sql");

/// How long `migrate` keeps trying while other sessions hold the locks it needs.
pub(crate) const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// How often the sessions in the way are looked up.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The sessions that block `pid`, one description each.
const BLOCKERS: &str = "SELECT a.pid, COALESCE(a.usename::text, '?'), COALESCE(NULLIF(a.application_name, ''), '-'), \
     COALESCE(a.client_addr::text, 'local'), COALESCE(a.state, '?'), \
     COALESCE(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-') \
     FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.pid";

/// Connects with the daemon's own settings and runs the schema in one batch.
///
/// # Errors
/// Exit 78 when Postgres is not configured, 69 when it cannot be reached or refuses, 75
/// when other sessions held the locks it needs for longer than `wait`.
pub(crate) fn run(settings: &Settings, wait: Option<Duration>) -> Result<(), Fatal> {
    let Some(pg) = wiring::postgres_config(settings)? else {
        return Err(Fatal::new(CONFIG, "config error: postgres.enabled: migrate needs the Postgres tier enabled"));
    };
    let wait = wait.unwrap_or(DEFAULT_LOCK_WAIT);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let (pool, _tls) =
            connect_pool(&pg.connect).map_err(|e| Fatal::new(CONFIG, format!("config error: {}: {e}", e.key())))?;
        let connect = |e: &dyn std::fmt::Display| {
            let at = connect_target(&pg.connect);
            Fatal::new(UNAVAILABLE, format!("migrate: cannot connect to Postgres at {at}: {e}"))
        };
        let client = pool.get().await.map_err(|e| connect(&e))?;
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.map_err(|e| connect(&e))?.get(0);
        let started = Instant::now();
        loop {
            let holders = Arc::new(Mutex::new(Vec::new()));
            // Another connection looks up who is in the way while the script waits: beside
            // the script in this task (its panic is the command's), dropped when it ends.
            let other = pool.get().await.ok();
            let watching = async {
                if let Some(other) = &other {
                    watch(other, pid, holders.clone()).await;
                }
            };
            let script = client.batch_execute(SCHEMA);
            tokio::pin!(script);
            let result = tokio::select! {
                result = &mut script => result,
                () = watching => script.await,
            };
            match result {
                Ok(()) => {
                    println!("schema.sql applied");
                    return Ok(());
                }
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    // The script's transaction is aborted: end it before trying again.
                    let _ = client.batch_execute("ROLLBACK").await;
                    let held_by = held_by(&holders);
                    if started.elapsed() >= wait {
                        return Err(Fatal::new(
                            TEMPFAIL,
                            format!(
                                "migrate: gave up after {} waiting for locks held by {held_by}; nothing was \
                                 changed; try again once they are released (or with a longer --wait)",
                                humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(Fatal::new(UNAVAILABLE, format!("migrate: schema.sql failed: {}", describe(&e)))),
            }
        }
    })
}

/// Reports on stderr each session that blocks `pid` (once each), and keeps the latest
/// list for the final message.
async fn watch(client: &tokio_postgres::Client, pid: i32, holders: Arc<Mutex<Vec<String>>>) {
    let mut told = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Ok(rows) = client.query(BLOCKERS, &[&pid]).await else { return };
        let now: Vec<(i32, String)> = rows
            .iter()
            .map(|r| {
                let (pid, user, app, from, state, since): (i32, String, String, String, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                (pid, format!("pid {pid} (user {user}, application {app}, from {from}, {state}, in a transaction since {since})"))
            })
            .collect();
        for (pid, text) in &now {
            if told.insert(*pid) {
                eprintln!("migrate: waiting for a lock held by {text}");
            }
        }
        if !now.is_empty() {
            *holders.lock().expect("not poisoned") = now.into_iter().map(|(_, t)| t).collect();
        }
    }
}

fn held_by(holders: &Mutex<Vec<String>>) -> String {
    let holders = holders.lock().expect("not poisoned");
    if holders.is_empty() {
        "other sessions".into()
    } else {
        holders.join(", ")
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
