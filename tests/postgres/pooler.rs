//! `postgres.statement_cache = false` works through a transaction pooler (PgBouncer in
//! transaction mode, as Supabase's pooler on port 6543), where named prepared
//! statements break.
//!
//! With `statement_cache = true` through the same PgBouncer: STATEMENT_CACHE_TRUE_NOTE

use crate::helpers::{cluster, get_ok, put_ok, wait_for_row, Conf, DB};
use serde_json::json;
use tiercache_testkit::PgBouncer;

#[test]
fn statement_cache_off_works_through_pgbouncer_in_transaction_mode() {
    let pg = cluster();
    let bouncer = PgBouncer::start(&pg, DB);
    let mut d =
        Conf::new(bouncer.url(DB, "postgres")).postgres("statement_cache = false").caches(&["p1", "p2", "p3"]).start();

    // Enough saves that transactions land on different server connections
    // (server_round_robin), which is where named statements would go missing.
    let mut last = Vec::new();
    for i in 0..5 {
        for name in ["p1", "p2", "p3"] {
            let doc = json!({"cache": name, "i": i});
            let (v, _) = put_ok(&d, name, &doc);
            if i == 4 {
                last.push((name, v, doc));
            }
        }
    }
    for (name, v, doc) in &last {
        wait_for_row(&pg, "default", name, *v, doc);
    }

    // Reading back through the pooler: a start without files loads everything.
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.start_again();
    for (name, v, doc) in &last {
        let (version, tier, body) = get_ok(&d, name);
        assert_eq!((version, &body), (*v, doc), "{name}");
        assert!(tier == "file" || tier == "postgres", "{name}: {tier}");
    }
    let errors: Vec<String> =
        d.stdout_all().lines().filter(|l| l.contains("prepared statement")).map(str::to_owned).collect();
    assert!(errors.is_empty(), "prepared statement errors through the pooler:\n{}", errors.join("\n"));
    drop(d);
    drop(bouncer);
}
