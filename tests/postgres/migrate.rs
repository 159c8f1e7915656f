//! `tiercache migrate` applies schema.sql with the daemon's own settings, twice cleanly.

use crate::helpers::*;
use std::process::Command;
use tiercache_testkit::PgCluster;

fn migrate(pg: &PgCluster, db: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .arg("migrate")
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
    wait_for("the row", ARRIVAL, || (pg.psql(db, &sql).ok()?.trim() == version.to_string()).then_some(()));
}
