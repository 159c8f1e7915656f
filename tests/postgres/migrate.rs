//! `tiercache migrate` applies schema.sql with the daemon's own settings, twice cleanly.

use crate::helpers::*;
use std::process::Command;
use tiercache_testkit::PgCluster;

fn migrate(pg: &PgCluster, db: &str) -> std::process::Output {
    migrate_with(pg, db, &[])
}

fn migrate_with(pg: &PgCluster, db: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .arg("migrate")
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("SUPABASE_DB_URL")
        .env("SUPABASE_ENABLED", "true")
        .env("SUPABASE_DB_URL", pg.url(db, "postgres"))
        .output()
        .expect("run tiercache migrate")
}

#[test]
fn migrate_applies_the_schema_twice_and_then_the_daemon_uses_it() {
    let pg = PgCluster::start();
    pg.create_database("fresh").unwrap();
    for round in 1..=2 {
        let out = migrate(&pg, "fresh");
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("schema.sql applied"));
    }
    let tables = pg
        .psql(
            "fresh",
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
        )
        .unwrap();
    assert_eq!(tables.trim(), "cache_audit,cache_storage,projects,source_state");
    // The daemon works on the migrated database.
    let d = Conf::new(pg.url("fresh", "postgres")).caches(&["doc"]).start();
    let (version, _) = put_ok(&d, "doc", &serde_json::json!({"ok": true}));
    wait_for_row_in(&pg, "fresh", "doc", version);
}

#[test]
fn migrate_without_postgres_configured_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("migrate").current_dir(dir.path()).env_remove("SUPABASE_ENABLED").output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config error: postgres.enabled"));
}

fn wait_for_row_in(pg: &PgCluster, db: &str, cache: &str, version: u64) {
    let sql = format!("SELECT version FROM cache_storage WHERE cache_type = '{cache}'");
    wait_for("the row", ARRIVAL, || {
        let found = pg.psql(db, &sql).map_or_else(|e| e.to_string(), |v| v.trim().to_owned());
        let done = found == version.to_string();
        seen(found, done)
    });
}

/// While another project's role holds what `migrate` needs (the migration's advisory
/// lock, then an ACCESS SHARE left open), `migrate` names that session and gives up
/// with exit 75 after `--wait`; the writers of every project keep going meanwhile (the
/// script waits at most 2 s for any lock); once the locks are released it applies.
#[test]
fn migrate_names_who_holds_its_locks_and_gives_up_with_75_while_writers_go_on() {
    let pg = cluster();
    role_by_the_docs(&pg, "tiercache_a", "a", "secret-a");
    role_by_the_docs(&pg, "tiercache_b", "b", "secret-b");
    let d = Conf::new(pg.url(DB, "tiercache_a")).top("project = \"a\"").caches(&["doc"]).start();
    let (v, _) = put_ok(&d, "doc", &serde_json::json!({"n": 0}));
    wait_for_row(&pg, "a", "doc", v, &serde_json::json!({"n": 0}));

    for hold in
        ["SELECT pg_advisory_lock(hashtext('tiercache schema.sql'));", "LOCK TABLE cache_storage IN ACCESS SHARE MODE;"]
    {
        let mut b = Session::open_as(&pg, "tiercache_b");
        b.run_until(&format!("BEGIN; {hold} SELECT 'held';"), "held", std::time::Duration::from_secs(10));
        let writer = std::thread::scope(|s| {
            let migrating = s.spawn(|| {
                let started = std::time::Instant::now();
                (migrate_with(&pg, DB, &["--wait", "4s"]), started.elapsed())
            });
            // A's saves reach Postgres while migrate waits and tries again.
            let mut slowest = std::time::Duration::ZERO;
            for n in 1..=3 {
                std::thread::sleep(std::time::Duration::from_millis(700));
                let started = std::time::Instant::now();
                let body = serde_json::json!({"n": n, "hold": hold});
                let (v, _) = put_ok(&d, "doc", &body);
                wait_for_row(&pg, "a", "doc", v, &body);
                slowest = slowest.max(started.elapsed());
            }
            let (out, took) = migrating.join().unwrap();
            (out, took, slowest)
        });
        let (out, took, slowest) = writer;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{hold}: {stderr}");
        assert!(
            stderr.contains("waiting for a lock held by pid") && stderr.contains("user tiercache_b"),
            "{hold}: {stderr}"
        );
        assert!(stderr.contains("gave up after"), "{stderr}");
        assert!(took < std::time::Duration::from_secs(15), "{hold}: migrate took {took:?}");
        assert!(slowest < std::time::Duration::from_secs(5), "{hold}: a save took {slowest:?} during the migration");
        b.release();
    }
    // Released: it applies.
    let out = migrate_with(&pg, DB, &["--wait", "4s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
