//! Log lines about Postgres that an operator reads to find a cause: connection errors
//! name the socket or host:port tried (never the password), a LISTEN that never
//! connected is not "lost", a project that is not registered is not "Postgres
//! unavailable", the pool's own WARN lines stay out of the log, and the retry queue
//! says when it has drained after an outage.

use crate::helpers::{cluster, message, put_ok, wait_queue_empty, Conf, DB};
use serde_json::{json, Value};
use std::time::Duration;

fn messages(lines: &[Value]) -> Vec<String> {
    lines.iter().map(|l| message(l).to_owned()).collect()
}

#[test]
fn postgres_down_at_startup_names_the_socket_and_listen_never_connected() {
    let mut pg = cluster();
    pg.stop();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&["a"]).start();
    let socket = format!("{}/.s.PGSQL.{}", pg.socket_dir().display(), pg.port());
    let startup = d.wait_for_log("the startup error", Duration::from_secs(10), |l| {
        message(l).starts_with("Postgres unavailable at startup")
    });
    assert!(startup["error"].as_str().is_some_and(|e| e.contains(&socket)), "names {socket}: {startup}");
    let listen = d.wait_for_log("the LISTEN line", Duration::from_secs(10), |l| {
        message(l) == "cannot connect for LISTEN; retrying"
    });
    assert!(listen["error"].as_str().is_some_and(|e| e.contains(&socket)), "names {socket}: {listen}");
    let all = messages(&d.log_lines());
    assert!(!all.iter().any(|m| m.contains("LISTEN connection lost")), "no connection existed: {all:?}");
}

#[test]
fn an_unregistered_project_is_not_called_postgres_unavailable() {
    let pg = cluster();
    pg.psql(DB, "CREATE ROLE tiercache_u LOGIN IN ROLE tiercache_app;").unwrap();
    let d = Conf::new(pg.url(DB, "tiercache_u")).top("project = \"u\"").caches(&["x"]).start();
    let line = d.wait_for_log("the startup line", Duration::from_secs(10), |l| {
        message(l).contains("not registered") && l["level"] == "ERROR"
    });
    assert_eq!(
        message(&line),
        "Postgres is up but the project is not registered; serving from files until it is",
        "{line}"
    );
    d.wait_for_log("the LISTEN line", Duration::from_secs(10), |l| {
        message(l) == "waiting for the project to be registered before LISTEN"
    });
    let all = messages(&d.log_lines());
    assert!(!all.iter().any(|m| m.starts_with("Postgres unavailable")), "{all:?}");
    assert!(!all.iter().any(|m| m.contains("LISTEN connection lost")), "{all:?}");
}

#[test]
fn after_an_outage_the_queue_says_it_drained_and_the_pool_does_not_chatter() {
    let mut pg = cluster();
    let d = Conf::new(pg.url(DB, "postgres"))
        .caches(&["a", "b"])
        .retry("initial_interval = \"100ms\"\nmax_interval = \"500ms\"")
        .start();
    put_ok(&d, "a", &json!({"a": 0}));
    wait_queue_empty(&d, Duration::from_secs(10));
    pg.stop();
    put_ok(&d, "a", &json!({"a": 1}));
    put_ok(&d, "b", &json!({"b": 1}));
    d.wait_for_log("a failed attempt", Duration::from_secs(10), |l| l["level"] == "WARN");
    pg.start_again();
    let line =
        d.wait_for_log("the drained line", Duration::from_secs(20), |l| message(l).starts_with("retry queue drained:"));
    assert_eq!(message(&line), "retry queue drained: 2 saves reached Postgres", "{line}");
    assert_eq!(line["saves"], 2, "{line}");
    let pool: Vec<Value> = d.log_lines().into_iter().filter(|l| l["target"] == "deadpool.postgres").collect();
    assert!(pool.is_empty(), "the pool's own lines: {pool:?}");
}

#[test]
fn migrate_names_the_socket_it_could_not_reach_and_never_the_password() {
    let mut pg = cluster();
    pg.stop();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url(DB, "postgres").replace("postgres@", "postgres:hunter2@");
    let out = std::process::Command::new(crate::helpers::BIN)
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("SUPABASE_ENABLED", "true")
        .env("SUPABASE_DB_URL", url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    let socket = format!("{}/.s.PGSQL.{}", pg.socket_dir().display(), pg.port());
    assert!(stderr.contains(&format!("cannot connect to Postgres at socket {socket}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
