//! The listener adopts another instance's row only over the local version it compared
//! it with: a local save acknowledged between that comparison and the adopt is never
//! replaced (the failpoint `listener::adopt` widens the window), it is written above
//! the row instead and wins everywhere (last acknowledged save wins).

use crate::helpers::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::Daemon;

/// Waits until `d` logged that it adopted `version` from another instance.
fn adopted(d: &Daemon, version: u64) {
    wait_for(&format!("version {version} adopted"), Duration::from_secs(10), || {
        d.stdout_all()
            .lines()
            .any(|l| l.contains("replaced by a newer version") && l.contains(&format!("\"version\":{version}")))
            .then_some(())
    });
}

#[test]
fn a_local_save_made_while_the_listener_adopts_a_row_survives() {
    let mut pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["c"]);
    let a = Daemon::start(Path::new(BIN), conf.options().env("FAILPOINTS", "listener::adopt=return(4000)"));
    let b = conf.start();

    put_ok(&b, "c", &json!({"b": 1}));
    adopted(&a, 1);
    // While A pauses on adopting version 2, B writes 3 and 4: A's next adopt jumps to 4.
    let (v2, _) = put_ok(&b, "c", &json!({"b": 2}));
    wait_for_row(&pg, "default", "c", v2, &json!({"b": 2}));
    for n in [3, 4] {
        let (v, _) = put_ok(&b, "c", &json!({"b": n}));
        wait_for_row(&pg, "default", "c", v, &json!({"b": n}));
    }
    adopted(&a, 2);
    // A has read the heads again (version 4, above its 2) and pauses before adopting
    // it. With Postgres gone, A's own save waits in its retry queue, which will send
    // whatever its file holds by then.
    std::thread::sleep(Duration::from_millis(300));
    pg.stop();
    let (local, _) = put_ok(&a, "c", &json!({"a": "saved here"}));
    assert_eq!(local, 3, "saved above the version A held");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(get_ok(&a, "c").2, json!({"a": "saved here"}), "the adopt replaced a newer local save");
    pg.start_again();

    let want = json!({"a": "saved here"});
    for d in [&a, &b] {
        wait_for("the local save served everywhere", Duration::from_secs(15), || {
            (get_ok(d, "c").2 == want).then_some(())
        });
    }
    let row = row(&pg, "c").expect("a row");
    assert_eq!(row.data, want, "Postgres holds the last acknowledged save");
    assert!(row.version > 4, "written above the other instance's row: {}", row.version);
}
