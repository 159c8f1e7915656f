//! A save that Postgres rejects for good goes to the dead letter after
//! `retry.max_attempts`, with an alert log line and a metric, and never blocks the
//! other caches.

use crate::helpers::{cluster, get_ok, message, put_ok, seen, wait_for, wait_for_row, wait_queue_empty, Conf, DB};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn a_save_postgres_rejects_for_good_is_dead_lettered_and_others_flow() {
    let pg = cluster();
    // Postgres accepts every cache but "poison" (a constraint not checked against the
    // rows already there).
    pg.psql(DB, "ALTER TABLE cache_storage ADD CONSTRAINT no_poison CHECK (cache_type <> 'poison') NOT VALID").unwrap();
    let d = Conf::new(pg.url(DB, "postgres"))
        .caches(&["poison", "good1", "good2"])
        .retry("initial_interval = \"50ms\"\nmax_interval = \"200ms\"\nmax_attempts = 3")
        .start();

    let (vp, _) = put_ok(&d, "poison", &json!({"p": 1}));
    let (v1, _) = put_ok(&d, "good1", &json!({"g": 1}));
    let (v2, _) = put_ok(&d, "good2", &json!({"g": 2}));
    wait_for_row(&pg, "default", "good1", v1, &json!({"g": 1}));
    wait_for_row(&pg, "default", "good2", v2, &json!({"g": 2}));

    let dead = wait_for("a file in dead-letter/", Duration::from_secs(10), || {
        let f = d.files_in("dead-letter");
        let done = !f.is_empty();
        seen(f, done)
    });
    assert_eq!(dead.len(), 1, "{dead:?}");
    let name = dead[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("poison"), "{name}");
    let record: Value = serde_json::from_slice(&std::fs::read(&dead[0]).unwrap()).expect("the dead letter is JSON");
    assert!(record.to_string().contains("no_poison") || record.to_string().contains("23514"), "{record}");

    let alert = d.wait_for_log("with alert: true about the dead letter", Duration::from_secs(5), |l| {
        l["alert"] == true && l["cache"] == "poison"
    });
    assert_eq!(alert["level"], "ERROR", "{alert}");
    eprintln!("dead letter alert: {}", message(&alert));
    assert_eq!(d.metric("tiercache_dead_letters_total{cache=\"poison\"}"), Some(1.0));

    // The poison save is still acknowledged and served locally; the queue is free.
    let (version, _, body) = get_ok(&d, "poison");
    assert_eq!((version, body), (vp, json!({"p": 1})));
    wait_queue_empty(&d, Duration::from_secs(5));

    // The other caches keep flowing.
    let (v1b, _) = put_ok(&d, "good1", &json!({"g": "later"}));
    wait_for_row(&pg, "default", "good1", v1b, &json!({"g": "later"}));
    assert!(crate::helpers::row(&pg, "poison").is_none());
    assert_eq!(d.metric("tiercache_dead_letters_total{cache=\"poison\"}"), Some(1.0), "dead-lettered once");
    // Postgres never acknowledged the poison save: meta never says it did, not even
    // after a restart (whose startup sync tries it once more, as every file Postgres
    // lacks).
    let synced = |d: &tiercache_testkit::Daemon, cache: &str| {
        d.get(&format!("/v1/caches/{cache}/meta"), &[]).json()["postgres_synced"].clone()
    };
    assert_eq!(synced(&d, "poison"), false);
    assert_eq!(synced(&d, "good1"), true);
    let mut d = d;
    d.restart();
    assert_eq!(synced(&d, "poison"), false);
    assert_eq!(synced(&d, "good1"), true);
}
