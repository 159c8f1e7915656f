//! `tiercache status --json` and `tiercache get --meta` against a daemon with
//! Postgres: per cache whether Postgres has it, the retry queue and `postgres_up`, as
//! Postgres goes away and comes back.

use crate::helpers::{cluster, put_ok, seen, wait_for, wait_queue_empty, Conf, BIN, DB};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use tiercache_testkit::daemon::Daemon;

/// `tiercache ARGS --config` the daemon's own file; the JSON it prints.
fn cli_json(d: &Daemon, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(d.config_path())
        .current_dir(d.dir())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tiercache");
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out:?}"))
}

fn synced_of(status: &Value, cache: &str) -> Value {
    let caches = status["caches"].as_array().expect("caches");
    caches.iter().find(|c| c["name"] == cache).unwrap_or_else(|| panic!("{cache} in {status}"))["postgres_synced"]
        .clone()
}

#[test]
fn status_and_meta_follow_postgres_going_away_and_coming_back() {
    let mut pg = cluster();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&["a", "b"]).start();
    let (v1, _) = put_ok(&d, "a", &json!({"n": 1}));
    put_ok(&d, "b", &json!({"b": true}));
    wait_queue_empty(&d, Duration::from_secs(15));

    let status = cli_json(&d, &["status", "--json"]);
    assert_eq!(status["postgres_up"], true, "{status}");
    assert_eq!(status["retry_queue"]["depth"], 0, "{status}");
    assert_eq!(synced_of(&status, "a"), true, "{status}");
    let meta = cli_json(&d, &["get", "a", "--meta"]);
    assert_eq!((meta["version"].as_u64(), &meta["postgres_synced"]), (Some(v1), &json!(true)), "{meta}");

    pg.stop();
    let (v2, _) = put_ok(&d, "a", &json!({"n": 2}));
    let status = wait_for("Postgres reported down", Duration::from_secs(20), || {
        let s = cli_json(&d, &["status", "--json"]);
        let done = s["postgres_up"] == false;
        seen(s, done)
    });
    assert_eq!(status["retry_queue"]["depth"], 1, "{status}");
    assert_eq!(synced_of(&status, "a"), false, "{status}");
    assert_eq!(synced_of(&status, "b"), true, "b has nothing waiting: {status}");
    let meta = cli_json(&d, &["get", "a", "--meta"]);
    assert_eq!((meta["version"].as_u64(), &meta["postgres_synced"]), (Some(v2), &json!(false)), "{meta}");

    pg.start_again();
    wait_queue_empty(&d, Duration::from_secs(30));
    let status = wait_for("Postgres reported up", Duration::from_secs(20), || {
        let s = cli_json(&d, &["status", "--json"]);
        let done = s["postgres_up"] == true;
        seen(s, done)
    });
    assert_eq!(synced_of(&status, "a"), true, "{status}");
}
