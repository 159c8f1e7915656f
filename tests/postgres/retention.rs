//! Retention: a cache no longer configured is purged from each tier once unsaved
//! for its retention: the row by its own `retention_days`, the file by the longest
//! retention known for it. Configured caches are never touched; the purge follows
//! reloads. Rows and files are back-dated (`saved_at` in the past).

use crate::helpers::{cluster, put_ok, row, seen, wait_for, wait_for_row, Conf, BIN, DB};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::pg::quote_literal;
use tiercache_testkit::{envelope, Daemon, PgCluster};

/// A pass every second, and a line at the end of each.
fn start(conf: &Conf) -> Daemon {
    let opts = conf
        .options()
        .env("TIERCACHE_RETENTION_INTERVAL", "1s")
        .env("RUST_LOG", "info,tiercache_actors::retention=debug");
    Daemon::start(Path::new(BIN), opts)
}

/// Moves the row's `saved_at` `days` into the past, as the table's owner.
fn backdate_row(pg: &PgCluster, cache: &str, days: u32) {
    pg.psql(
        DB,
        &format!(
            "UPDATE cache_storage SET saved_at = now() - interval '{days} days' WHERE cache_type = {}",
            quote_literal(cache)
        ),
    )
    .unwrap();
}

fn backdate(pg: &PgCluster, d: &Daemon, cache: &str, days: u32) {
    backdate_row(pg, cache, days);
    envelope::backdate(&d.cache_file(cache), i64::from(days));
}

/// The retention log lines of `cache` so far, as (tier, age_days, retention_days).
fn purges(d: &Daemon, cache: &str) -> Vec<(String, i64, i64)> {
    d.log_lines()
        .iter()
        .filter(|l| l["message"] == "retention: purged a cache no longer configured" && l["cache"] == cache)
        .map(|l| (l["tier"].as_str().unwrap_or_default().to_owned(), int(&l["age_days"]), int(&l["retention_days"])))
        .collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

/// Waits until `n` more retention passes have finished.
fn wait_passes(d: &Daemon, n: usize) {
    let count = || d.log_lines().iter().filter(|l| l["message"] == "retention pass finished").count();
    let target = count() + n;
    wait_for("retention passes", Duration::from_secs(15), || {
        let n = count();
        seen(format!("{n} of {target}"), n >= target)
    });
}

#[test]
fn removed_caches_are_purged_from_each_tier_by_their_own_retention() {
    let pg = cluster();
    let url = pg.url(DB, "postgres");
    let all = Conf::new(url.clone()).caches(&["keep", "old", "young", "long"]);
    let mut d = start(&all);
    for cache in ["keep", "old", "young", "long"] {
        let (v, _) = put_ok(&d, cache, &json!({ "c": cache }));
        wait_for_row(&pg, "default", cache, v, &json!({ "c": cache }));
    }
    d.stop();
    // 40 days old (past the default 30), except `young`; `long`'s row keeps 90 days.
    for (cache, days) in [("keep", 40), ("old", 40), ("young", 10), ("long", 40)] {
        backdate(&pg, &d, cache, days);
    }
    pg.psql(DB, "UPDATE cache_storage SET retention_days = 90 WHERE cache_type = 'long'").unwrap();

    d.set_config(Conf::new(url).caches(&["keep"]).text());
    d.start_again();
    wait_for("old purged from both tiers", Duration::from_secs(15), || {
        let (r, file) = (row(&pg, "old"), d.cache_file("old").exists());
        let done = r.is_none() && !file;
        seen(format!("row {r:?}, file present: {file}"), done)
    });
    wait_passes(&d, 2);
    for cache in ["keep", "young", "long"] {
        assert!(row(&pg, cache).is_some(), "{cache}'s row was purged");
        assert!(d.cache_file(cache).exists(), "{cache}'s file was purged");
        assert!(purges(&d, cache).is_empty(), "{cache}: {:?}", purges(&d, cache));
    }
    let mut tiers: Vec<_> = purges(&d, "old");
    tiers.sort();
    assert_eq!(tiers, [("file".into(), 40, 30), ("postgres".into(), 40, 30)], "logged with tier, age and retention");
    // The file side never went through DELETE: no tombstone, nothing sent to Postgres.
    assert!(d.files_in("tombstones").is_empty());
    assert_eq!(d.get_cache("keep").status, 200);
}

#[test]
fn the_purge_follows_reloads() {
    let pg = cluster();
    let url = pg.url(DB, "postgres");
    let mut d = start(&Conf::new(url.clone()).caches(&["a", "b"]));
    for cache in ["a", "b"] {
        let (v, _) = put_ok(&d, cache, &json!({ "c": cache }));
        wait_for_row(&pg, "default", cache, v, &json!({ "c": cache }));
    }
    // SIGHUP: `b` leaves, `c` arrives.
    d.set_config(Conf::new(url).caches(&["a", "c"]).text());
    d.signal(Signal::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || d.stdout_all().contains("configuration reloaded").then_some(()));
    let (v, _) = put_ok(&d, "c", &json!({ "c": "c" }));
    wait_for_row(&pg, "default", "c", v, &json!({ "c": "c" }));
    for cache in ["a", "b", "c"] {
        backdate(&pg, &d, cache, 40);
    }
    wait_for("b purged from both tiers", Duration::from_secs(15), || {
        let (r, file) = (row(&pg, "b"), d.cache_file("b").exists());
        let done = r.is_none() && !file;
        seen(format!("row {r:?}, file present: {file}"), done)
    });
    // The purge's log line follows its statement: wait for both tiers' lines.
    wait_for("b's purge logged for both tiers", Duration::from_secs(15), || {
        let p = purges(&d, "b");
        let done = p.len() >= 2;
        seen(p, done)
    });
    wait_passes(&d, 2);
    assert_eq!(purges(&d, "b").len(), 2, "one line per tier: {:?}", purges(&d, "b"));
    for cache in ["a", "c"] {
        assert!(row(&pg, cache).is_some(), "{cache}'s row was purged");
        assert!(d.cache_file(cache).exists(), "{cache}'s file was purged");
    }
    assert_eq!(d.get_cache("c").status, 200);
}
