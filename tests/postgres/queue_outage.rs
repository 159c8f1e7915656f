//! Postgres down: a hundred saves across five caches are all acknowledged and served;
//! Postgres back: the retry queue drains to zero and every row holds the newest
//! version, written once per cache (the queue coalesces).

use crate::helpers::{cluster, get_ok, put_ok, queue_depth, row, wait_for_row, wait_queue_empty, Conf, DB};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const CACHES: [&str; 5] = ["q0", "q1", "q2", "q3", "q4"];

#[test]
fn a_hundred_saves_during_an_outage_all_reach_postgres_afterwards() {
    let mut pg = cluster();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).start();
    // The daemon has met Postgres (and registered its project) before the outage.
    assert_eq!(d.get("/readyz", &[]).status, 200);
    pg.stop();

    let mut last: BTreeMap<&str, (u64, Value)> = BTreeMap::new();
    for i in 0..100 {
        let name = CACHES[i % CACHES.len()];
        let doc = json!({"cache": name, "i": i, "pad": "x".repeat(i * 10)});
        let (v, _) = put_ok(&d, name, &doc);
        if let Some((prev, _)) = last.get(name) {
            assert!(v > *prev, "{name}: version {v} after {prev}");
        }
        last.insert(name, (v, doc));
    }
    for (name, (v, doc)) in &last {
        let (version, _, body) = get_ok(&d, name);
        assert_eq!((version, &body), (*v, doc), "{name} served during the outage");
    }
    assert_eq!(queue_depth(&d), CACHES.len() as u64, "one pending entry per cache");
    let listed = d.get("/v1/caches", &[]).json();
    for c in listed["caches"].as_array().unwrap() {
        assert_eq!(c["postgres_synced"], false, "{c}");
    }
    assert!(listed["retry_queue"]["oldest_age_seconds"].as_f64().is_some_and(|a| a >= 0.0), "{listed}");
    assert_eq!(d.metric("tiercache_retry_queue_depth"), Some(CACHES.len() as f64));
    assert_eq!(d.metric("tiercache_postgres_up"), Some(0.0), "Postgres is down");

    pg.start_again();
    wait_queue_empty(&d, Duration::from_secs(20));
    for (name, (v, doc)) in &last {
        let r = wait_for_row(&pg, "default", name, *v, doc);
        assert_eq!(r.version, *v);
    }
    assert_eq!(d.metric("tiercache_retry_queue_depth"), Some(0.0));
    assert_eq!(d.metric("tiercache_postgres_up"), Some(1.0), "Postgres is back");
    assert!(d.metric("tiercache_postgres_writes_total{result=\"ok\"}").is_some_and(|n| n >= CACHES.len() as f64));
    // Coalesced: each cache's row was written once, with its newest version only.
    let writes =
        pg.psql(DB, "SELECT cache_type || ':' || count(*) FROM cache_audit GROUP BY cache_type ORDER BY 1").unwrap();
    let expected: Vec<String> = CACHES.iter().map(|c| format!("{c}:1")).collect();
    assert_eq!(writes, expected.join("\n"), "writes per cache");
    assert!(row(&pg, "q0").is_some());
}
