//! `If-Match` across instances: with Postgres reachable, a conditional PUT is a
//! compare-and-set on the row, so clients of two instances doing read-modify-write lose
//! no update; with Postgres unreachable, `postgres.single_instance` decides between 503
//! and a local check.

use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tiercache_testkit::{Daemon, PgCluster};

/// GET then PUT `{"n": n + 1}` with `If-Match`; `Some(true)` when acknowledged,
/// `Some(false)` on 412.
fn increment(d: &Daemon) -> Option<bool> {
    let r = d.get_cache("counter");
    if r.status != 200 {
        return None;
    }
    let etag = r.header("etag")?.to_owned();
    let n = r.json()["n"].as_u64()?;
    let body = json!({"n": n + 1}).to_string();
    let put =
        d.put("/v1/caches/counter", body.as_bytes(), &[("Content-Type", "application/json"), ("If-Match", &etag)]);
    match put.status {
        200 => Some(true),
        412 => Some(false),
        other => panic!("If-Match PUT answered {other}: {put:?}"),
    }
}

fn served(d: &Daemon) -> (u64, Value) {
    let (version, _, body) = get_ok(d, "counter");
    (version, body)
}

#[test]
fn four_clients_incrementing_through_two_instances_lose_no_update() {
    let pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["counter"]);
    let (a, b) = (conf.start(), conf.start());
    put_ok(&a, "counter", &json!({"n": 0}));
    wait_for("the other instance serving the counter", Duration::from_secs(5), || {
        (b.get_cache("counter").status == 200).then_some(())
    });

    let (acked, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(10);
    std::thread::scope(|s| {
        for client in 0..4 {
            let d = if client % 2 == 0 { &a } else { &b };
            let (acked, refused) = (&acked, &refused);
            s.spawn(move || {
                while Instant::now() < until {
                    match increment(d) {
                        Some(true) => acked.fetch_add(1, Ordering::Relaxed),
                        Some(false) => refused.fetch_add(1, Ordering::Relaxed),
                        None => 0,
                    };
                }
            });
        }
    });
    let acked = acked.load(Ordering::Relaxed);
    assert!(acked > 20, "too few increments to mean anything: {acked}");
    let (version, body) = wait_for("both instances at one version", Duration::from_secs(10), || {
        let (va, ba) = served(&a);
        let (vb, bb) = served(&b);
        (va == vb && ba == bb).then_some((va, ba))
    });
    let row = row(&pg, "counter").expect("a row");
    assert_eq!(row.version, version, "Postgres holds the version both instances serve");
    assert_eq!(
        body["n"].as_u64(),
        Some(acked),
        "{acked} increments acknowledged ({} refused), final counter {body}: lost updates",
        refused.load(Ordering::Relaxed)
    );
}

#[test]
fn with_postgres_unreachable_if_match_is_refused_unless_the_instance_is_alone() {
    let mut pg = cluster();
    let shared = Conf::new(pg.url(DB, "postgres")).caches(&["counter"]);
    let alone = shared.clone().postgres("single_instance = true");
    let (a, b) = (shared.start(), alone.start());
    let etag_a = a.put_json("counter", r#"{"n": 1}"#).header("etag").unwrap().to_owned();
    let etag_b = b.put_json("counter", r#"{"n": 1}"#).header("etag").unwrap().to_owned();
    pg.stop();

    let r = a.put(
        "/v1/caches/counter",
        br#"{"n": 2}"#,
        &[("Content-Type", "application/json"), ("If-Match", etag_a.as_str())],
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(r.json()["code"], "precondition_unverifiable", "{r:?}");
    // Not applied: the instance still serves what it had.
    assert_eq!(a.get_cache("counter").json(), json!({"n": 1}));
    // Without If-Match, a PUT is durable on disk first, as ever.
    assert_eq!(a.put_json("counter", r#"{"n": 5}"#).status, 200);

    // Declared alone: the local check decides.
    let r = b.put(
        "/v1/caches/counter",
        br#"{"n": 2}"#,
        &[("Content-Type", "application/json"), ("If-Match", etag_b.as_str())],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = b.put(
        "/v1/caches/counter",
        br#"{"n": 3}"#,
        &[("Content-Type", "application/json"), ("If-Match", etag_b.as_str())],
    );
    assert_eq!(r.status, 412, "the old ETag no longer matches: {r:?}");
}

/// The row's `retention_days` (what retention purges it by), read as `postgres`.
fn row_retention(pg: &PgCluster, cache: &str) -> String {
    let sql = format!("SELECT retention_days FROM cache_storage WHERE cache_type = '{cache}'");
    pg.psql(DB, &sql).expect("psql").trim().to_owned()
}

#[test]
fn an_if_match_put_after_a_reload_stores_the_reloaded_retention_days() {
    let pg = cluster();
    let url = pg.url(DB, "postgres");
    let conf = |days: u32| {
        Conf::new(url.clone()).tables(&format!("[[caches]]\nname = \"counter\"\nretention_days = {days}\n"))
    };
    let mut d = conf(7).start();
    let (v, _) = put_ok(&d, "counter", &json!({"n": 0}));
    wait_for_row(&pg, "default", "counter", v, &json!({"n": 0}));
    assert_eq!(row_retention(&pg, "counter"), "7");

    d.set_config(conf(90).text());
    d.signal(nix::sys::signal::Signal::SIGHUP);
    // The retention pass after the reload stores the new value in the row first.
    wait_for("the reloaded retention_days in the row", Duration::from_secs(15), || {
        let days = row_retention(&pg, "counter");
        seen(days.clone(), days == "90")
    });
    assert_eq!(increment(&d), Some(true), "the If-Match PUT was refused");
    wait_for("the If-Match PUT in the row", Duration::from_secs(10), || {
        let r = row(&pg, "counter");
        let done = r.as_ref().is_some_and(|r| r.data == json!({"n": 1}));
        seen(format!("{r:?}"), done)
    });
    assert_eq!(row_retention(&pg, "counter"), "90", "the If-Match PUT wrote the retention_days of before the reload");
}
