//! A rotated database password reaches the pool on SIGHUP, without a restart
//! (secrets come from files and are read again on reload).

use crate::helpers::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::Duration;
use tiercache_testkit::PgOptions;

#[test]
fn sighup_rereads_the_password_file_and_new_connections_use_it() {
    let pg = cluster_with(PgOptions::new().tcp_password_auth(true));
    pg.psql(
        DB,
        "CREATE ROLE tc_app LOGIN PASSWORD 'first-secret' IN ROLE tiercache_app;
         INSERT INTO projects (project_name, db_role) VALUES ('rot', 'tc_app');",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "first-secret\n").unwrap();
    let url = pg.tcp_url(DB, "tc_app");
    let conf = Conf::new(url)
        .top("project = \"rot\"")
        .postgres(&format!("password_file = {}\nsslmode = \"disable\"", toml_str(&pw.display().to_string())))
        .caches(&["doc"]);
    let d = conf.start();
    let (v1, _) = put_ok(&d, "doc", &json!({"n": 1}));
    wait_for_row(&pg, "rot", "doc", v1, &json!({"n": 1}));

    // Rotate: the database first, then the file, then SIGHUP; old sessions are cut.
    pg.psql(DB, "ALTER ROLE tc_app PASSWORD 'second-secret'").unwrap();
    std::fs::write(&pw, "second-secret\n").unwrap();
    d.signal(Signal::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || {
        d.stdout_all().contains("Postgres connection settings reloaded").then_some(())
    });
    pg.psql(DB, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'tc_app'").unwrap();

    let (v2, _) = put_ok(&d, "doc", &json!({"n": 2}));
    wait_for_row(&pg, "rot", "doc", v2, &json!({"n": 2}));
    assert!(!d.stdout_all().contains("second-secret"), "the password never reaches a log");
}
