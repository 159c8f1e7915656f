//! Postgres stopped at startup: the daemon becomes ready from its files and takes saves;
//! once Postgres is started the saves arrive.

use crate::helpers::{cluster, get_ok, put_ok, wait_for_row, Conf, DB};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn ready_from_files_while_postgres_is_down_and_saves_arrive_later() {
    let mut pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["a", "b"]).tables("[shutdown]\ntimeout = \"1s\"\n").start();
    let (v1, _) = put_ok(&d, "a", &json!({"a": 1}));
    wait_for_row(&pg, "default", "a", v1, &json!({"a": 1}));
    d.stop();

    pg.stop();
    let started = Instant::now();
    d.start_again();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "readiness took {took:?} with Postgres down");
    assert_eq!(d.get("/readyz", &[]).status, 200);
    d.wait_for_log("saying Postgres is unavailable at startup", Duration::from_secs(5), |l| {
        l["level"] == "ERROR" && l.to_string().to_lowercase().contains("postgres")
    });

    // Served from the file, saves acknowledged.
    let (version, tier, body) = get_ok(&d, "a");
    assert_eq!((version, body), (v1, json!({"a": 1})));
    assert!(tier == "file" || tier == "memory", "{tier}");
    let (v2, _) = put_ok(&d, "a", &json!({"a": 2}));
    let (vb, _) = put_ok(&d, "b", &json!({"b": 1}));
    assert!(v2 > v1);
    // Both were tried and failed; they wait in the retry queue.
    crate::helpers::wait_for("attempts of both saves to fail", Duration::from_secs(10), || {
        let failed = crate::helpers::failed_writes(&d);
        crate::helpers::seen(failed, failed >= 2.0)
    });
    assert_eq!(crate::helpers::queue_depth(&d), 2, "both saves wait in the retry queue");

    // Postgres comes back: both saves arrive without a restart of the daemon.
    pg.start_again();
    wait_for_row(&pg, "default", "a", v2, &json!({"a": 2}));
    wait_for_row(&pg, "default", "b", vb, &json!({"b": 1}));
    crate::helpers::wait_queue_empty(&d, Duration::from_secs(10));
    let r = d.get("/v1/caches", &[]).json();
    for c in r["caches"].as_array().unwrap() {
        assert_eq!(c["postgres_synced"], true, "{r}");
    }
}
