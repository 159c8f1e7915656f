//! A DELETE reaches only the versions its instance knew: one that arrives at Postgres
//! after another instance's later save leaves that save in place (the failpoint
//! `retry::attempt` holds the delete back).

use crate::helpers::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::Daemon;

#[test]
fn a_delete_arriving_after_a_later_save_elsewhere_leaves_that_save() {
    let pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["c"]);
    let a = Daemon::start(Path::new(BIN), conf.options().env("FAILPOINTS", "retry::attempt=1*sleep(4000)"));
    let b = conf.start();
    let (v1, _) = put_ok(&b, "c", &json!({"n": 1}));
    wait_for_row(&pg, "default", "c", v1, &json!({"n": 1}));
    wait_for("A holding version 1", Duration::from_secs(10), || (get_ok(&a, "c").0 == v1).then_some(()));

    // A's delete (of version 1) is held back; meanwhile B saves version 2.
    let r = a.delete("/v1/caches/c", &[]);
    assert_eq!(r.status, 204, "{r:?}");
    let (v2, _) = put_ok(&b, "c", &json!({"n": 2}));
    wait_for_row(&pg, "default", "c", v2, &json!({"n": 2}));

    // A's delete goes through once released, and finds a newer row: it stays.
    wait_for("A's tombstone gone", Duration::from_secs(15), || {
        (!a.data_dir().join("tombstones/c.json").exists()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let row = row(&pg, "c").expect("B's later save was deleted");
    assert_eq!((row.version, row.data), (v2, json!({"n": 2})));
    for d in [&a, &b] {
        wait_for("the later save served", Duration::from_secs(10), || {
            (get_ok(d, "c").2 == json!({"n": 2})).then_some(())
        });
    }
}
