//! A DELETE reaches only the versions its instance knew: one that arrives at Postgres
//! after another instance's later save leaves that save in place (the failpoint
//! `retry::attempt` holds the delete back).

use crate::helpers::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::daemon::Signal;
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

/// A save made after a delete from another instance takes a version above the deleted
/// one. Found by the history checker: B dropped its copy (deleted by A at version 1)
/// and saved again at version 1; A, which knew the deleted document at version 1,
/// then wrote its own earlier save over B's row as if over what it knew, and B's later
/// acknowledged save was lost everywhere. Postgres is stopped while both save, and A is
/// held (SIGSTOP) until B's save is in Postgres, so B's row is the one A meets.
#[test]
fn a_save_after_a_delete_elsewhere_is_not_overwritten_by_an_earlier_save() {
    let mut pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["c"]);
    let a = conf.start();
    let b = conf.start();
    let (v1, _) = put_ok(&b, "c", &json!({"b": 1}));
    wait_for_row(&pg, "default", "c", v1, &json!({"b": 1}));
    wait_for("A holding version 1", Duration::from_secs(10), || (get_ok(&a, "c").0 == v1).then_some(()));
    let r = a.delete("/v1/caches/c", &[]);
    assert_eq!(r.status, 204, "{r:?}");
    b.wait_for_message("deleted by another instance");

    pg.stop();
    let (from_a, _) = put_ok(&a, "c", &json!({"a": "saved first"}));
    let want = json!({"b": "saved last"});
    let (from_b, _) = put_ok(&b, "c", &want);
    assert!(from_b > v1, "B saved at version {from_b}, the deleted document's was {v1}");
    a.signal(Signal::SIGSTOP);
    pg.start_again();
    wait_for("B's save in Postgres", Duration::from_secs(20), || {
        let row = row(&pg, "c").map(|r| (r.version, r.data));
        let done = row.as_ref().is_some_and(|(_, data)| data == &want);
        seen(row, done)
    });
    a.signal(Signal::SIGCONT);
    for d in [&a, &b] {
        wait_for("the save acknowledged last served everywhere", Duration::from_secs(20), || {
            let (version, _, body) = get_ok(d, "c");
            seen((version, body.clone()), body == want)
        });
    }
    // A serves it: its earlier save yielded to the row instead of writing over it.
    let row = row(&pg, "c").expect("a row");
    assert_eq!(row.data, want, "Postgres holds the last acknowledged save (A saved {from_a} first)");
}
