//! Plain PUTs on two instances: the save acknowledged last wins, whichever reached
//! Postgres first (the failpoint `retry::attempt` holds the earlier save back until the
//! later one is in Postgres).

use crate::helpers::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tiercache_testkit::Daemon;

#[test]
fn an_earlier_save_reaching_postgres_after_a_later_one_yields_to_it() {
    let pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["c"]);
    let a = Daemon::start(Path::new(BIN), conf.options().env("FAILPOINTS", "retry::attempt=1*sleep(4000)"));
    let b = conf.start();

    // A's save is acknowledged first and held back on its way to Postgres; B's, made
    // after it, reaches Postgres first.
    put_ok(&a, "c", &json!({"n": "earlier"}));
    let (vb, _) = put_ok(&b, "c", &json!({"n": "later"}));
    wait_for_row(&pg, "default", "c", vb, &json!({"n": "later"}));

    // Once released, A's earlier save finds later content in the row and yields to it.
    wait_queue_empty(&a, Duration::from_secs(20));
    for d in [&a, &b] {
        wait_for("the later save served", Duration::from_secs(10), || {
            (get_ok(d, "c").2 == json!({"n": "later"})).then_some(())
        });
    }
    let row = row(&pg, "c").expect("a row");
    assert_eq!(row.data, json!({"n": "later"}), "the earlier save overwrote the later one");
    let (va, _, _) = get_ok(&a, "c");
    let (vb, _, _) = get_ok(&b, "c");
    assert_eq!((va, vb), (row.version, row.version), "every copy at the row's version");
}
