//! Postgres writes never move a row backwards. A save that meets a row with an
//! equal or higher version and other data is not dropped: it is written above it.

use crate::helpers::{cluster, get_ok, put_ok, row, seen, wait_for, wait_for_row, wait_queue_empty, Conf, ARRIVAL, DB};
use serde_json::json;
use tiercache_testkit::PgCluster;

/// Overwrites the row of `cache` (project `default`) as another writer would: another
/// document with its right checksum, at `version`.
fn write_row_directly(pg: &PgCluster, cache: &str, version: u64, canonical: &str) {
    pg.psql(
        DB,
        &format!(
            "UPDATE cache_storage SET version = {version}, data = '{canonical}'::jsonb, \
               checksum = 'sha256:' || encode(sha256(convert_to('{canonical}', 'UTF8')), 'hex'), \
               data_size = {len}, saved_at = now() \
             WHERE cache_type = '{cache}' AND project_id = (SELECT id FROM projects WHERE project_name = 'default')",
            len = canonical.len()
        ),
    )
    .unwrap();
}

/// Every UPDATE of `cache` in the audit log went up in version.
fn assert_never_backwards(pg: &PgCluster, cache: &str) {
    let audit = pg
        .psql(
            DB,
            &format!(
                "SELECT operation, old_version, new_version FROM cache_audit WHERE cache_type = '{cache}' ORDER BY id"
            ),
        )
        .unwrap();
    for line in audit.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f[0] == "UPDATE" {
            let (old, new): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            assert!(new > old, "{cache}: a write moved the row from {old} to {new}; audit:\n{audit}");
        }
    }
}

#[test]
fn a_save_meeting_a_higher_row_is_written_above_it() {
    let pg = cluster();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&["g"]).start();
    let (v1, _) = put_ok(&d, "g", &json!({"mine": 1}));
    wait_for_row(&pg, "default", "g", v1, &json!({"mine": 1}));

    // Another writer (another instance, say) puts version v1 + 100 with other data.
    let high = v1 + 100;
    write_row_directly(&pg, "g", high, r#"{"other":true}"#);

    // This daemon does not know: its next save is v1 + 1 locally, then rebased.
    let doc = json!({"mine": 2});
    let (v2, checksum) = put_ok(&d, "g", &doc);
    assert!(v2 > v1);
    let r = wait_for("the save to be written above the row", ARRIVAL, || {
        let r = row(&pg, "g");
        let done = r.as_ref().is_some_and(|r| r.data == doc);
        seen(r, done)
    })
    .expect("a row");
    assert!(r.version > high, "the save was written at {} which is not above the row's {high}", r.version);
    assert_eq!(r.checksum, checksum, "same document, same checksum");

    // The daemon adopts the version Postgres gave its save.
    let (served, _, body) = wait_for("the daemon to serve the rebased version", ARRIVAL, || {
        let g = get_ok(&d, "g");
        let done = g.0 == r.version;
        seen(g, done)
    });
    assert_eq!((served, body), (r.version, doc.clone()));
    // And its next save goes above that.
    let (v3, _) = put_ok(&d, "g", &json!({"mine": 3}));
    assert!(v3 > r.version, "{v3} after {}", r.version);
    wait_for_row(&pg, "default", "g", v3, &json!({"mine": 3}));
    assert_never_backwards(&pg, "g");
}

#[test]
fn a_lower_version_never_overwrites_a_higher_one() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["g"]).start();
    let (v1, _) = put_ok(&d, "g", &json!({"old": 1}));
    wait_for_row(&pg, "default", "g", v1, &json!({"old": 1}));
    d.stop();

    // While the daemon is away, Postgres gets a newer version of the cache.
    let high = v1 + 50;
    write_row_directly(&pg, "g", high, r#"{"newer":1}"#);

    // At the next start the daemon's file (v1) is older than the row: the row wins, the
    // file is repaired, and the old version is never written over the row.
    d.start_again();
    let (served, _, body) = get_ok(&d, "g");
    assert_eq!((served, body), (high, json!({"newer": 1})));
    // The startup sync decided: the row is adopted and nothing is queued for Postgres.
    let loaded = d.wait_for_message("loaded from Postgres");
    assert_eq!((loaded["from_postgres"].as_u64(), loaded["to_postgres"].as_u64()), (Some(1), Some(0)), "{loaded}");
    wait_queue_empty(&d, ARRIVAL);
    let r = row(&pg, "g").unwrap();
    assert_eq!((r.version, r.data), (high, json!({"newer": 1})), "the older file must not replace the row");
    let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(d.cache_file("g")).unwrap()).unwrap();
    assert_eq!(envelope["version"].as_u64(), Some(high), "file repaired from the newer row: {envelope}");

    // The trigger refuses anybody's attempt to lower the version.
    let err = pg
        .psql(DB, "UPDATE cache_storage SET version = 1 WHERE cache_type = 'g'")
        .expect_err("lowering a version must fail");
    assert!(err.message().contains("may not go down"), "{err}");
    assert_never_backwards(&pg, "g");
}

/// When the row already holds an equal or higher version with a different checksum
/// (say `data_dir` was lost while Postgres was away), the acknowledged save is not
/// dropped: it is given a version above the row's and written. Postgres comes back
/// either before the daemon's next start (`restart`) or while it runs.
fn acknowledged_save_beats_the_older_row(restart: bool) {
    let mut pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["g"]).tables("[shutdown]\ntimeout = \"1s\"\n");
    let mut d = conf.start();
    let mut last = 0;
    for i in 0..3 {
        last = put_ok(&d, "g", &json!({"before": i})).0;
    }
    wait_for_row(&pg, "default", "g", last, &json!({"before": 2}));
    d.stop();

    // data_dir is lost while Postgres is away; a new save is acknowledged from scratch
    // (its version is below the row's, which the daemon cannot see).
    pg.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.start_again();
    let acked = json!({"after": "the loss"});
    let (v, _) = put_ok(&d, "g", &acked);
    assert!(v <= last, "the daemon cannot know the row's version: {v} vs {last}");
    if restart {
        d.stop();
        pg.start_again();
        d.start_again();
    } else {
        pg.start_again();
    }

    // The acknowledged save must end in Postgres above the row, and be what the daemon
    // serves.
    let r = wait_for("the acknowledged save to reach Postgres", ARRIVAL, || {
        let r = row(&pg, "g");
        let done = r.as_ref().is_some_and(|r| r.data == acked);
        seen(r, done)
    })
    .expect("a row");
    assert!(r.version > last, "written at {}, the row was at {last}", r.version);
    let (_, _, body) = get_ok(&d, "g");
    assert_eq!(body, acked, "the acknowledged save was dropped for the older row");
    // The daemon adopts the version Postgres gave the save just after the write.
    wait_for("the daemon to serve the version Postgres holds", ARRIVAL, || {
        let served = get_ok(&d, "g").0;
        seen(served, served == r.version)
    });
    assert_never_backwards(&pg, "g");
}

#[test]
fn a_save_acknowledged_while_postgres_was_away_beats_the_older_row_at_the_next_start() {
    acknowledged_save_beats_the_older_row(true);
}

#[test]
fn a_save_acknowledged_while_postgres_was_away_beats_the_older_row_when_it_returns() {
    acknowledged_save_beats_the_older_row(false);
}
