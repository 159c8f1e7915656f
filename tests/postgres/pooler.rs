//! `postgres.statement_cache = false` works through a transaction pooler (PgBouncer in
//! transaction mode, as Supabase's pooler on port 6543), where named prepared
//! statements break.
//!
//! What `statement_cache = true` does through the same PgBouncer (observed with
//! PgBouncer 1.18 and this daemon; documented, not asserted):
//!
//! - With PgBouncer's defaults nothing connects at all: the daemon sends its
//!   `statement_timeout` as the startup parameter `options`, which PgBouncer refuses
//!   (`08P01: unsupported startup parameter: options`). The daemon starts from its
//!   files, acknowledges every save and retries them for ever (the error is classed as
//!   "unavailable"); no row ever arrives.
//! - With `ignore_startup_parameters = extra_float_digits,options` it connects, and the
//!   named statements go wrong as soon as transactions land on another server
//!   connection: `26000: prepared statement "s5" does not exist` (classed "rejected",
//!   so a save can reach the dead letter after `retry.max_attempts` although nothing is
//!   wrong with it), and worse, a statement name bound on a connection where it names
//!   another statement (`22021: invalid byte sequence for encoding "UTF8": 0x00` when
//!   the startup read's parameters met the upsert's statement). Rows arrived in the end
//!   in that run, by luck of the round robin.
//!
//! So `statement_cache = false` is required behind a transaction pooler, as the
//! configuration reference says, and the daemon refuses to start with
//! `statement_cache = true` when it detects one (the second test).

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

/// `statement_cache = true` through a transaction pooler is refused at startup (exit 78,
/// one line naming the key); through a session pooler it is fine.
#[test]
fn statement_cache_on_behind_a_transaction_pooler_is_refused_at_startup() {
    let pg = cluster();
    // PgBouncer passes the daemon's startup options on, as Supabase's pooler does.
    let ignore = [("ignore_startup_parameters", "extra_float_digits,options")];
    // Both ways PgBouncer hands out idle server connections: in turn, or the last
    // released first (its default).
    for round_robin in ["1", "0"] {
        let bouncer = PgBouncer::start_with(&pg, DB, &[ignore[0], ("server_round_robin", round_robin)]);
        let conf = Conf::new(bouncer.url(DB, "postgres")).caches(&["p1"]);
        let mut d = tiercache_testkit::Daemon::new(std::path::Path::new(crate::helpers::BIN), conf.options());
        d.spawn();
        assert_eq!(
            d.wait_exit(std::time::Duration::from_secs(20)),
            Some(78),
            "round robin {round_robin}:\n{}",
            d.stdout()
        );
        let stderr = d.stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].starts_with("config error: postgres.statement_cache:"), "{stderr}");
        assert!(lines[0].contains("statement_cache = false"), "says the way out: {stderr}");
    }

    let session = PgBouncer::start_with(&pg, DB, &[ignore[0], ("pool_mode", "session")]);
    let d = Conf::new(session.url(DB, "postgres")).caches(&["p1"]).start();
    let (v, _) = put_ok(&d, "p1", &json!({"via": "session pooler"}));
    wait_for_row(&pg, "default", "p1", v, &json!({"via": "session pooler"}));
}
