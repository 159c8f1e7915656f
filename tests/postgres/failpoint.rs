//! Failpoint panics in the actors that talk to Postgres, at the start of a handler
//! (`retry::drain`, `store::read`, `store::write`) and inside the asynchronous work a
//! handler started (`retry::attempt`, `store::query`): the supervisor restarts the
//! actor and counts it, and every save still reaches Postgres.

use crate::helpers::{cluster, put_ok, wait_for, wait_for_row, wait_queue_empty, Conf, ARRIVAL, DB};
use serde_json::json;
use std::time::Duration;

#[test]
fn a_panic_in_retry_drain_restarts_the_actor_and_loses_no_save() {
    let mut pg = cluster();
    let d = tiercache_testkit::Daemon::start(
        std::path::Path::new(crate::helpers::BIN),
        Conf::new(pg.url(DB, "postgres"))
            .caches(&["f1", "f2", "f3"])
            .options()
            .env("FAILPOINTS", "retry::drain=1*panic"),
    );
    pg.stop();
    let mut last = Vec::new();
    for i in 0..4 {
        for name in ["f1", "f2", "f3"] {
            let doc = json!({"cache": name, "i": i});
            let (v, _) = put_ok(&d, name, &doc);
            if i == 3 {
                last.push((name, v, doc));
            }
        }
    }
    let restarts = wait_for("the retry actor to be restarted", Duration::from_secs(10), || {
        match d.metric("tiercache_actor_restarts_total{actor=\"retry\"}") {
            Some(n) if n >= 1.0 => Ok(n),
            other => Err(other),
        }
    });
    assert!(restarts >= 1.0);
    assert_eq!(d.get("/healthz", &[]).status, 200);

    pg.start_again();
    for (name, v, doc) in &last {
        wait_for_row(&pg, "default", name, *v, doc);
    }
    wait_queue_empty(&d, ARRIVAL);
}

/// `store::read` and `store::write` panic the store actor once each: the startup read
/// and the first write are retried, the actor restarts, and nothing is lost.
#[test]
fn panics_in_store_read_and_write_restart_the_store_and_lose_nothing() {
    let pg = cluster();
    let mut d = tiercache_testkit::Daemon::start(
        std::path::Path::new(crate::helpers::BIN),
        Conf::new(pg.url(DB, "postgres"))
            .caches(&["f1", "f2"])
            .options()
            .env("FAILPOINTS", "store::read=1*panic;store::write=1*panic"),
    );
    let (v1, _) = put_ok(&d, "f1", &json!({"f": 1}));
    let (v2, _) = put_ok(&d, "f2", &json!({"f": 2}));
    wait_for_row(&pg, "default", "f1", v1, &json!({"f": 1}));
    wait_for_row(&pg, "default", "f2", v2, &json!({"f": 2}));
    let restarts = d.metric("tiercache_actor_restarts_total{actor=\"store\"}").unwrap_or(0.0);
    assert!(restarts >= 1.0, "store restarts: {restarts}\n{}", d.metrics());

    // Reading from Postgres after the restarts: a start without files.
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.remove_env("FAILPOINTS");
    d.start_again();
    assert_eq!(crate::helpers::get_ok(&d, "f1").2, json!({"f": 1}));
}

/// `retry::attempt` panics inside a write to Postgres already in flight (the handler
/// has returned): the retry queue is restarted and counted, rebuilds itself from disk,
/// and the save still reaches Postgres.
#[test]
fn a_panic_in_a_write_in_flight_restarts_the_retry_queue_and_loses_no_save() {
    let pg = cluster();
    let d = tiercache_testkit::Daemon::start(
        std::path::Path::new(crate::helpers::BIN),
        Conf::new(pg.url(DB, "postgres")).caches(&["f1"]).options().env("FAILPOINTS", "retry::attempt=1*panic"),
    );
    let (v, _) = put_ok(&d, "f1", &json!({"f": 1}));
    wait_for_row(&pg, "default", "f1", v, &json!({"f": 1}));
    let restarts = wait_for("the retry actor to be restarted", Duration::from_secs(10), || {
        match d.metric("tiercache_actor_restarts_total{actor=\"retry\"}") {
            Some(n) if n >= 1.0 => Ok(n),
            other => Err(other),
        }
    });
    assert_eq!(restarts, 1.0);
    wait_queue_empty(&d, ARRIVAL);
    assert_eq!(d.get("/healthz", &[]).status, 200);
    assert_eq!(crate::helpers::get_ok(&d, "f1").2, json!({"f": 1}));
}

/// `store::query` panics inside a statement in flight: the store is restarted and
/// counted, the caller retries, and reads and writes go on.
#[test]
fn a_panic_in_a_statement_in_flight_restarts_the_store_and_loses_nothing() {
    let pg = cluster();
    let d = tiercache_testkit::Daemon::start(
        std::path::Path::new(crate::helpers::BIN),
        Conf::new(pg.url(DB, "postgres")).caches(&["f1"]).options().env("FAILPOINTS", "store::query=1*panic"),
    );
    let (v, _) = put_ok(&d, "f1", &json!({"f": 1}));
    wait_for_row(&pg, "default", "f1", v, &json!({"f": 1}));
    let restarts = wait_for("the store to be restarted", Duration::from_secs(10), || {
        match d.metric("tiercache_actor_restarts_total{actor=\"store\"}") {
            Some(n) if n >= 1.0 => Ok(n),
            other => Err(other),
        }
    });
    assert_eq!(restarts, 1.0);
    wait_queue_empty(&d, ARRIVAL);
    assert_eq!(d.get("/healthz", &[]).status, 200);
}
