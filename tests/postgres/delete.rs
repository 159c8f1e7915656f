//! A DELETE purges the cache from Postgres too, and no restart brings it back: not from
//! Postgres (while the delete has not reached it yet), not from the files.

use crate::helpers::{cluster, put_ok, row, seen, wait_for, wait_for_row, Conf, ARRIVAL, DB};
use serde_json::json;
use tiercache_testkit::Daemon;

#[track_caller]
fn assert_gone(d: &Daemon, cache: &str, when: &str) {
    let r = d.get_cache(cache);
    assert_eq!(r.status, 503, "{when}: {cache} came back: {r:?}");
    assert!(!d.cache_file(cache).exists(), "{when}: {cache}'s file came back");
}

#[test]
fn a_delete_reaches_postgres_and_survives_restarts() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["gone", "kept"]).start();
    let (v, _) = put_ok(&d, "gone", &json!({"secret": 1}));
    let (vk, _) = put_ok(&d, "kept", &json!({"kept": 1}));
    wait_for_row(&pg, "default", "gone", v, &json!({"secret": 1}));
    wait_for_row(&pg, "default", "kept", vk, &json!({"kept": 1}));

    let r = d.delete("/v1/caches/gone", &[]);
    assert_eq!(r.status, 204, "{r:?}");
    assert_gone(&d, "gone", "after DELETE");
    wait_for("the row to be deleted", ARRIVAL, || {
        let r = row(&pg, "gone");
        let done = r.is_none();
        seen(r, done)
    });

    d.restart();
    assert_gone(&d, "gone", "after a restart");
    // Removed while stopped: the running daemon writes its records there.
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.start_again();
    assert_gone(&d, "gone", "after a restart without data_dir");
    assert_eq!(d.get_cache("kept").status, 200);
    assert!(row(&pg, "gone").is_none());
}

#[test]
fn a_delete_made_while_postgres_is_down_is_not_undone_by_the_row() {
    let mut pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["gone"]).tables("[shutdown]\ntimeout = \"1s\"\n").start();
    let (v, _) = put_ok(&d, "gone", &json!({"secret": 2}));
    wait_for_row(&pg, "default", "gone", v, &json!({"secret": 2}));

    pg.stop();
    assert_eq!(d.delete("/v1/caches/gone", &[]).status, 204);
    assert_gone(&d, "gone", "after DELETE with Postgres down");
    d.restart();
    assert_gone(&d, "gone", "after a restart with Postgres down");
    d.stop();

    // Postgres is back with the row still in it; the daemon starts and must not take
    // the row back: the tombstone wins and the delete reaches Postgres.
    pg.start_again();
    assert!(row(&pg, "gone").is_some(), "the row is still there before the daemon starts");
    d.start_again();
    assert_gone(&d, "gone", "after a start with the row still in Postgres");
    wait_for("the row to be deleted", ARRIVAL, || {
        let r = row(&pg, "gone");
        let done = r.is_none();
        seen(r, done)
    });
    d.restart();
    assert_gone(&d, "gone", "after the delete reached Postgres");
}
