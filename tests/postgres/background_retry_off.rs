//! `BACKGROUND_RETRY=false`: a save is tried once; when that fails it stays on disk
//! (with a warning) and is sent at the next start.

use crate::helpers::{cluster, put_ok, queue_depth, row, seen, wait_for, wait_for_row, Conf, DB};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::Daemon;

#[test]
fn a_failed_save_stays_on_disk_and_is_sent_at_the_next_start() {
    let mut pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["r1", "r2", "r3"]).tables("[shutdown]\ntimeout = \"2s\"\n");
    let mut d = Daemon::start(Path::new(crate::helpers::BIN), conf.options().env("BACKGROUND_RETRY", "false"));

    // With Postgres up a save is sent at once.
    let (v1, _) = put_ok(&d, "r1", &json!({"r": 1}));
    wait_for_row(&pg, "default", "r1", v1, &json!({"r": 1}));

    // With Postgres down the one attempt fails, and nothing retries it.
    pg.stop();
    let (v2, _) = put_ok(&d, "r1", &json!({"r": 2}));
    let (vb, _) = put_ok(&d, "r2", &json!({"r2": 1}));
    d.wait_for_log("warning that the save waits for the next start", Duration::from_secs(5), |l| {
        l["level"] == "WARN" && l["cache"] == "r2" && l.to_string().contains("next start")
    });
    // Nothing is left to retry: the queue holds neither save.
    wait_for("the queue to let both saves go", Duration::from_secs(5), || {
        let depth = queue_depth(&d);
        seen(depth, depth == 0)
    });
    pg.start_again();
    // Postgres is back and this daemon writes to it again: a new save arrives.
    let (v3, _) = put_ok(&d, "r3", &json!({"r3": 1}));
    wait_for_row(&pg, "default", "r3", v3, &json!({"r3": 1}));
    assert_eq!(row(&pg, "r1").unwrap().version, v1, "retried in the background though BACKGROUND_RETRY=false");
    assert!(row(&pg, "r2").is_none(), "retried in the background though BACKGROUND_RETRY=false");

    // The next start sends what is on disk.
    d.restart();
    wait_for_row(&pg, "default", "r1", v2, &json!({"r": 2}));
    wait_for_row(&pg, "default", "r2", vb, &json!({"r2": 1}));
}
