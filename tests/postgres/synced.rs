//! `postgres_synced` (meta) and `SYNCED` (`tiercache status`) are true only when
//! Postgres acknowledged exactly the version served: never while Postgres is away and
//! nothing was synced, never for a cache without data.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use tiercache_testkit::Daemon;

fn synced(d: &Daemon, cache: &str) -> serde_json::Value {
    d.get(&format!("/v1/caches/{cache}/meta"), &[]).json()["postgres_synced"].clone()
}

/// The SYNCED column of `tiercache status` for `cache`.
fn synced_column(d: &Daemon, cache: &str) -> String {
    let out = d.run(&["status"], &[]);
    let line = out.stdout.lines().find(|l| l.starts_with(&format!("{cache} "))).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("no line for {cache} in:\n{}", out.stdout));
    line.split_whitespace().last().unwrap_or_default().to_owned()
}

#[test]
fn synced_is_true_only_once_postgres_acknowledged_that_very_version() {
    let mut pg = cluster();
    pg.stop();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&["saved", "empty"]).start();
    let (v, _) = put_ok(&d, "saved", &json!({"n": 1}));
    // Postgres is down and nothing was ever synced.
    for cache in ["saved", "empty"] {
        assert_eq!(synced(&d, cache), false, "{cache}");
        assert_eq!(synced_column(&d, cache), "no", "{cache}");
    }
    pg.start_again();
    wait_for_row(&pg, "default", "saved", v, &json!({"n": 1}));
    wait_for("meta to say synced", Duration::from_secs(10), || {
        let s = synced(&d, "saved");
        let done = s == true;
        seen(s, done)
    });
    assert_eq!(synced_column(&d, "saved"), "yes");
    // A cache without data has nothing Postgres could have acknowledged.
    assert_eq!(synced(&d, "empty"), false);
    // A newer save is not synced until Postgres has that one.
    pg.stop();
    put_ok(&d, "saved", &json!({"n": 2}));
    assert_eq!(synced(&d, "saved"), false);
    assert_eq!(synced_column(&d, "saved"), "no");
}
