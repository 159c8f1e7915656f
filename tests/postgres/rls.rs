//! Row-level security through the daemon: each project's daemon connects with its own
//! least-privilege role (docs/database.md) and sees only its own project's rows.

use crate::helpers::{cluster, failed_writes, get_ok, put_ok, row_of, seen, wait_for, wait_for_row, Conf, DB};
use serde_json::json;

#[test]
fn a_project_role_never_sees_another_projects_caches() {
    let pg = cluster();
    // As docs/database.md says: a LOGIN role per project, member of tiercache_app,
    // named in its project's db_role.
    pg.psql(
        DB,
        "CREATE ROLE tiercache_a LOGIN IN ROLE tiercache_app;
         CREATE ROLE tiercache_b LOGIN; GRANT tiercache_app TO tiercache_b;
         INSERT INTO projects (project_name, db_role) VALUES ('a', 'tiercache_a'), ('b', 'tiercache_b');",
    )
    .unwrap();
    let caches = ["shared", "only_b"];
    let mut da = Conf::new(pg.url(DB, "tiercache_a")).top("project = \"a\"").caches(&caches).start();
    let db = Conf::new(pg.url(DB, "tiercache_b")).top("project = \"b\"").caches(&caches).start();

    let (vb_only, _) = put_ok(&db, "only_b", &json!({"b's": "secret"}));
    let (vb_shared, _) = put_ok(&db, "shared", &json!({"owner": "b"}));
    let (va_shared, _) = put_ok(&da, "shared", &json!({"owner": "a"}));
    wait_for_row(&pg, "b", "only_b", vb_only, &json!({"b's": "secret"}));
    wait_for_row(&pg, "b", "shared", vb_shared, &json!({"owner": "b"}));
    wait_for_row(&pg, "a", "shared", va_shared, &json!({"owner": "a"}));
    assert!(row_of(&pg, "a", "only_b").is_none());

    // The roles themselves see only their own project.
    let seen_by_a = pg.psql_as(DB, "tiercache_a", "SELECT cache_type FROM cache_storage ORDER BY 1").unwrap();
    assert_eq!(seen_by_a, "shared");
    let seen_by_b = pg.psql_as(DB, "tiercache_b", "SELECT cache_type FROM cache_storage ORDER BY 1").unwrap();
    assert_eq!(seen_by_b, "only_b\nshared");

    // Daemon A, started without its files, reads what Postgres lets it see: its own
    // "shared", and nothing of b's "only_b".
    da.stop();
    std::fs::remove_dir_all(da.data_dir()).unwrap();
    da.start_again();
    let (_, _, shared) = get_ok(&da, "shared");
    assert_eq!(shared, json!({"owner": "a"}));
    let r = da.get_cache("only_b");
    assert_eq!(r.status, 503, "project a must not get b's cache: {r:?}");
    assert!(!r.body.contains("secret"), "{r:?}");
    assert!(!da.cache_file("only_b").exists());

    // A's writes never touched b's rows.
    assert_eq!(row_of(&pg, "b", "shared").unwrap().data, json!({"owner": "b"}));
    let audit_users = pg
        .psql(DB, "SELECT DISTINCT p.project_name || ':' || a.db_user FROM cache_audit a JOIN projects p ON p.id = a.project_id ORDER BY 1")
        .unwrap();
    assert_eq!(audit_users, "a:tiercache_a\nb:tiercache_b", "each project written only by its own role");

    // A project role that tries to pass for project b (whose row it cannot see) cannot
    // register it either: a clear error, b's rows untouched, the daemon still serves
    // from its files.
    let dc = Conf::new(pg.url(DB, "tiercache_a")).top("project = \"b\"").caches(&caches).start();
    let line = dc.wait_for_log("naming the unregistered project", std::time::Duration::from_secs(10), |l| {
        l["level"] == "ERROR" && l["error"].as_str().is_some_and(|e| e.contains("\"b\"") && e.contains("projects"))
    });
    eprintln!("an unregistered project is logged as: {line}");
    let (v, _) = put_ok(&dc, "only_b", &json!({"forged": true}));
    // The save was tried and refused before b's row is checked.
    wait_for("the forged save's attempt to fail", std::time::Duration::from_secs(10), || {
        let failed = failed_writes(&dc);
        seen(failed, failed >= 1.0)
    });
    assert_eq!(row_of(&pg, "b", "only_b").unwrap().data, json!({"b's": "secret"}), "b's row was overwritten (v{v})");
    assert_eq!(pg.psql(DB, "SELECT count(*) FROM projects").unwrap(), "2", "no project was added");
}

/// A project role whose project is not registered yet: the daemon says so clearly, its
/// saves wait in the retry queue (not in the dead letter: nothing is wrong with them),
/// and they arrive once the operator registers the project.
#[test]
fn saves_wait_for_the_project_to_be_registered() {
    let pg = cluster();
    pg.psql(DB, "CREATE ROLE tiercache_c LOGIN IN ROLE tiercache_app;").unwrap();
    let d = Conf::new(pg.url(DB, "tiercache_c"))
        .top("project = \"c\"")
        .caches(&["x"])
        .retry("initial_interval = \"50ms\"\nmax_interval = \"100ms\"\nmax_attempts = 3")
        .start();
    d.wait_for_log("naming the unregistered project", std::time::Duration::from_secs(10), |l| {
        l["level"] == "ERROR" && l["error"].as_str().is_some_and(|e| e.contains("\"c\"") && e.contains("projects"))
    });
    let (v, _) = put_ok(&d, "x", &json!({"x": 1}));
    // Past max_attempts: the save was tried more often than a rejected one would be.
    wait_for("more failed attempts than max_attempts", std::time::Duration::from_secs(10), || {
        let failed = failed_writes(&d);
        seen(failed, failed > 3.0)
    });
    let dead = d.files_in("dead-letter");
    assert!(dead.is_empty(), "saves of an unregistered project were dead-lettered: {dead:?}");
    assert_eq!(crate::helpers::queue_depth(&d), 1);

    pg.psql(DB, "INSERT INTO projects (project_name, db_role) VALUES ('c', 'tiercache_c')").unwrap();
    wait_for_row(&pg, "c", "x", v, &json!({"x": 1}));
}
