//! Tests of `schema.sql` (the repository's top level) on throwaway clusters: idempotence,
//! constraints, row-level security, the audit log, and a database that imitates
//! Supabase. Every test that creates roles has a cluster of its own (roles are
//! cluster-wide).

use std::path::PathBuf;

use tiercache_testkit::pg::{quote_literal, PgCluster};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("schema.sql")
}

fn schema() -> String {
    std::fs::read_to_string(schema_path()).expect("read schema.sql")
}

/// A cluster with database `app` and the schema applied (twice) by `postgres`.
fn cluster_with_schema() -> PgCluster {
    let pg = PgCluster::start();
    pg.create_database("app").unwrap();
    for _ in 0..2 {
        pg.psql_file("app", schema_path()).unwrap();
    }
    pg
}

fn checksum(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The daemon's upsert, version-guarded, for the project named `project`. Returns
/// the stored version when the row was written, nothing when the guard held.
fn upsert(project: &str, cache: &str, version: i64, data: &str) -> String {
    format!(
        "INSERT INTO cache_storage AS c
             (project_id, cache_type, data, version, checksum, last_fetch, saved_at, data_size)
         VALUES ((SELECT id FROM projects WHERE project_name = {p}), {n}, {d}::jsonb, {version},
                 {sum}, now(), now(), {size})
         ON CONFLICT (project_id, cache_type) DO UPDATE SET
             data = EXCLUDED.data, version = EXCLUDED.version, checksum = EXCLUDED.checksum,
             last_fetch = EXCLUDED.last_fetch, saved_at = EXCLUDED.saved_at,
             data_size = EXCLUDED.data_size
         WHERE c.version < EXCLUDED.version
         RETURNING version;",
        p = quote_literal(project),
        n = quote_literal(cache),
        d = quote_literal(data),
        sum = quote_literal(&checksum('a')),
        size = data.len(),
    )
}

/// A project role's write: `tiercache_write_cache` for the project named `project`
/// (`expected`: `None` for the version guard, else the compare-and-set's). Returns
/// `written|row_version|row_checksum`.
fn write(project: &str, cache: &str, version: i64, data: &str, expected: Option<i64>) -> String {
    write_to(
        &format!("(SELECT id FROM projects WHERE project_name = {})", quote_literal(project)),
        cache,
        version,
        data,
        expected,
    )
}

/// [`write`] to the project whose id is `project_id` (an SQL expression).
fn write_to(project_id: &str, cache: &str, version: i64, data: &str, expected: Option<i64>) -> String {
    format!(
        "SELECT written, row_version, row_checksum FROM tiercache_write_cache(
             {project_id}, {n}, {d}::jsonb, {version}, {sum}, now(), NULL, now(), {size}, 30, {expected});",
        n = quote_literal(cache),
        d = quote_literal(data),
        sum = quote_literal(&checksum(char::from(b'a' + (version % 6) as u8))),
        size = data.len(),
        expected = expected.map_or("NULL".to_owned(), |e| e.to_string()),
    )
}

/// The checksum [`write`] sends with `version`.
fn sum_of(version: i64) -> String {
    checksum(char::from(b'a' + (version % 6) as u8))
}

/// `sql` must fail with an error containing `needle`.
#[track_caller]
fn assert_fails(result: tiercache_testkit::Result<String>, needle: &str) {
    match result {
        Ok(out) => panic!("expected an error containing {needle:?}, got success: {out:?}"),
        Err(e) => assert!(e.message().contains(needle), "expected an error containing {needle:?}, got: {e}"),
    }
}

/// Creates LOGIN roles, members of tiercache_app, each owning the project of the same
/// name minus the `role_` prefix.
fn add_project_roles(pg: &PgCluster, db: &str, names: &[&str]) {
    for name in names {
        pg.psql(
            db,
            &format!(
                "CREATE ROLE role_{name} LOGIN;
                 GRANT tiercache_app TO role_{name};
                 INSERT INTO projects (project_name, db_role) VALUES ('{name}', 'role_{name}');"
            ),
        )
        .unwrap();
    }
}

#[test]
fn applies_twice_and_again_over_data_on_plain_postgres() {
    let pg = cluster_with_schema();
    assert_eq!(
        pg.psql(
            "app",
            "SELECT string_agg(relname || ':' || relrowsecurity || ':' || relforcerowsecurity, ',' ORDER BY relname)
             FROM pg_class WHERE relname IN ('projects', 'cache_storage', 'cache_audit')"
        )
        .unwrap(),
        "cache_audit:true:false,cache_storage:true:true,projects:true:true"
    );
    // Only the primary key and the UNIQUE(project_id, cache_type): every query uses those.
    assert_eq!(
        pg.psql(
            "app",
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'cache_storage'"
        )
        .unwrap(),
        "cache_storage_pkey,cache_storage_project_cache_key"
    );
    // No Supabase roles here, so no Supabase policy.
    assert_eq!(
        pg.psql("app", "SELECT string_agg(tablename || '.' || policyname, ',' ORDER BY tablename) FROM pg_policies")
            .unwrap(),
        "cache_audit.tiercache_own_audit,cache_storage.tiercache_own_caches,projects.tiercache_own_project,source_state.tiercache_own_state"
    );
    // lz4 wherever the server has it (Debian's PostgreSQL has).
    let lz4 = pg.psql("app", "SET default_toast_compression = lz4; SELECT 1").is_ok();
    let compression = pg
        .psql(
            "app",
            "SELECT attcompression FROM pg_attribute WHERE attrelid = 'cache_storage'::regclass AND attname = 'data'",
        )
        .unwrap();
    assert_eq!(compression, if lz4 { "l" } else { "" });

    // Applying again over data keeps every row.
    pg.psql("app", "INSERT INTO projects (project_name) VALUES ('p')").unwrap();
    pg.psql("app", &upsert("p", "strava", 3, r#"{"a":1}"#)).unwrap();
    pg.psql_file("app", schema_path()).unwrap();
    assert_eq!(pg.psql("app", "SELECT version || ' ' || data::text FROM cache_storage").unwrap(), r#"3 {"a": 1}"#);
    // And quietly: no notices on a second application.
    let out = pg.psql_file("app", schema_path()).unwrap();
    assert_eq!(out, "");
}

#[test]
fn constraints_reject_bad_rows() {
    let pg = cluster_with_schema();
    pg.psql("app", "INSERT INTO projects (project_name) VALUES ('p')").unwrap();
    let row = |project: &str, name: &str, version: &str, sum: &str, size: &str, days: &str| {
        pg.psql(
            "app",
            &format!(
                "INSERT INTO cache_storage
                     (project_id, cache_type, data, version, checksum, saved_at, data_size, retention_days)
                 VALUES ({project}, {name}, '{{}}', {version}, {sum}, now(), {size}, {days})"
            ),
        )
    };
    let p = "(SELECT id FROM projects WHERE project_name = 'p')";
    let good = quote_literal(&checksum('0'));
    let mut n = 0;
    let mut name = || {
        n += 1;
        format!("'c{n}'")
    };

    // Good rows, at the bounds.
    row(p, &name(), "1", &good, "0", "1").unwrap();
    row(p, &quote_literal(&format!("a{}", "z".repeat(49))), "1", &good, "67108864", "3650").unwrap();
    row(p, "'a_b-9'", "9223372036854775807", &good, "5", "30").unwrap();

    // The cache name: the daemon's ^[a-z][a-z0-9_-]{0,49}$.
    for bad in ["'Strava'", "'9lives'", "''", "'a b'", "'../x'", "'ä'"] {
        assert_fails(row(p, bad, "1", &good, "1", "30"), "cache_storage_cache_type_format");
    }
    let too_long = quote_literal(&"a".repeat(51));
    assert_fails(row(p, &too_long, "1", &good, "1", "30"), "too long");
    assert_fails(row(p, "NULL", "1", &good, "1", "30"), "null value in column \"cache_type\"");
    // The project.
    assert_fails(row("NULL", &name(), "1", &good, "1", "30"), "null value in column \"project_id\"");
    assert_fails(row("424242", &name(), "1", &good, "1", "30"), "foreign key");
    // The version.
    for bad in ["0", "-1"] {
        assert_fails(row(p, &name(), bad, &good, "1", "30"), "cache_storage_version_positive");
    }
    assert_fails(row(p, &name(), "NULL", &good, "1", "30"), "null value in column \"version\"");
    // The checksum.
    for bad in [
        quote_literal(&checksum('A')),
        quote_literal(&"0".repeat(64)),
        quote_literal(&format!("sha256:{}", "0".repeat(63))),
        quote_literal(&format!("md5:{}", "0".repeat(64))),
    ] {
        assert_fails(row(p, &name(), "1", &bad, "1", "30"), "cache_storage_checksum_format");
    }
    // The size: 64 MiB at most.
    for bad in ["67108865", "-1"] {
        assert_fails(row(p, &name(), "1", &good, bad, "30"), "cache_storage_data_size_range");
    }
    assert_fails(row(p, &name(), "1", &good, "NULL", "30"), "null value in column \"data_size\"");
    // Retention.
    for bad in ["0", "3651"] {
        assert_fails(row(p, &name(), "1", &good, "1", bad), "cache_storage_retention_days_range");
    }
    // One row per (project, cache).
    assert_fails(row(p, "'c1'", "2", &good, "1", "30"), "cache_storage_project_cache_key");
    // A version never goes down, whoever writes.
    assert_fails(
        pg.psql("app", "UPDATE cache_storage SET version = 0 + 1 WHERE cache_type = 'a_b-9'"),
        "may not go down",
    );
    assert_eq!(pg.psql("app", "SELECT count(*) FROM cache_storage").unwrap(), "3");
}

#[test]
fn version_guard_and_updated_at() {
    let pg = cluster_with_schema();
    pg.psql("app", "INSERT INTO projects (project_name) VALUES ('p')").unwrap();
    assert_eq!(pg.psql("app", &upsert("p", "c", 2, r#"{"v":2}"#)).unwrap(), "2");
    let created = pg.psql("app", "SELECT updated_at FROM cache_storage").unwrap();
    // Lower and equal versions are not written.
    assert_eq!(pg.psql("app", &upsert("p", "c", 1, r#"{"v":1}"#)).unwrap(), "");
    assert_eq!(pg.psql("app", &upsert("p", "c", 2, r#"{"v":"x"}"#)).unwrap(), "");
    assert_eq!(pg.psql("app", "SELECT data->>'v' FROM cache_storage").unwrap(), "2");
    // A higher one is, and moves updated_at.
    assert_eq!(pg.psql("app", &upsert("p", "c", 5, r#"{"v":5}"#)).unwrap(), "5");
    assert_eq!(
        pg.psql("app", &format!("SELECT data->>'v', updated_at > {} FROM cache_storage", quote_literal(&created)))
            .unwrap(),
        "5|t"
    );
}

#[test]
fn row_level_security_isolates_projects() {
    let pg = cluster_with_schema();
    add_project_roles(&pg, "app", &["a", "b"]);
    let a = |sql: &str| pg.psql_as("app", "role_a", sql);
    let b = |sql: &str| pg.psql_as("app", "role_b", sql);

    // Each role finds its own project, and only that.
    let id_a = a("SELECT id FROM projects WHERE project_name = 'a'").unwrap();
    let id_b = pg.psql("app", "SELECT id FROM projects WHERE project_name = 'b'").unwrap();
    assert!(!id_a.is_empty() && !id_b.is_empty());
    assert_eq!(a("SELECT id FROM projects WHERE project_name = 'b'").unwrap(), "");
    assert_eq!(a("SELECT string_agg(project_name, ',') FROM projects").unwrap(), "a");

    assert_eq!(a(&write("a", "strava", 1, r#"{"who":"a"}"#, None)).unwrap(), format!("t|1|{}", sum_of(1)));
    assert_eq!(b(&write("b", "strava", 1, r#"{"who":"b"}"#, None)).unwrap(), format!("t|1|{}", sum_of(1)));
    assert_eq!(b(&write("b", "fundraising", 1, "[]", None)).unwrap(), format!("t|1|{}", sum_of(1)));

    // A sees only its own rows.
    assert_eq!(
        a("SELECT string_agg(cache_type || '=' || (data->>'who'), ',') FROM cache_storage").unwrap(),
        "strava=a"
    );
    assert_eq!(a(&format!("SELECT count(*) FROM cache_storage WHERE project_id = {id_b}")).unwrap(), "0");
    // A writes nothing but through the functions: no INSERT, UPDATE, DELETE, TRUNCATE.
    for sql in [
        format!(
            "INSERT INTO cache_storage (project_id, cache_type, data, version, checksum, saved_at, data_size)
             VALUES ({id_a}, 'direct', '{{}}', 1, {}, now(), 2)",
            quote_literal(&checksum('b'))
        ),
        "UPDATE cache_storage SET version = 99".to_owned(),
        "DELETE FROM cache_storage".to_owned(),
        "TRUNCATE cache_storage".to_owned(),
        "INSERT INTO source_state (project_id, state_key, state) VALUES (1, 'strava:x', '{}')".to_owned(),
        "DELETE FROM source_state".to_owned(),
    ] {
        assert_fails(a(&sql), "permission denied");
    }
    // Nor may it make a function write B's rows, whatever it passes.
    let not_b = "is not the db_role of project";
    assert_fails(a(&write_to(&id_b, "strava", 99, "{}", None)), not_b);
    assert_fails(a(&write_to(&id_b, "evil", 1, "{}", Some(0))), not_b);
    assert_fails(a(&write_to("NULL", "strava", 99, "{}", None)), not_b);
    assert_fails(a(&format!("SELECT tiercache_delete_cache({id_b}, 'strava', 9)")), not_b);
    assert_fails(a(&format!("SELECT tiercache_store_retention({id_b}, ARRAY['strava'], ARRAY[1])")), not_b);
    assert_fails(a(&format!("SELECT * FROM tiercache_purge_unconfigured({id_b}, ARRAY[]::text[])")), not_b);
    assert_fails(a(&format!("SELECT tiercache_save_state({id_b}, 'strava:strava', '{{}}')")), not_b);
    assert_fails(a(&format!("SELECT tiercache_delete_state({id_b}, 'strava:strava')")), not_b);
    assert_fails(
        a(&format!("SELECT tiercache_record_check({id_b}, 'strava', 1, {}, now())", quote_literal(&sum_of(1)))),
        not_b,
    );
    // The group role it may SET ROLE to is no project's role either.
    assert_fails(a(&format!("SET ROLE tiercache_app; {}", write_to(&id_a, "strava", 5, "{}", None))), not_b);
    // Nor touch projects, nor call the helpers the functions use.
    assert_fails(a("INSERT INTO projects (project_name, db_role) VALUES ('c', 'role_a')"), "permission denied");
    assert_fails(a("UPDATE projects SET db_role = 'role_a' WHERE project_name = 'b'"), "permission denied");
    assert_fails(a("DELETE FROM projects"), "permission denied");
    assert_fails(a(&format!("SELECT tiercache_check_caller({id_b})")), "permission denied");
    assert_fails(a("SELECT tiercache_session_role()"), "permission denied");

    // B's rows are intact.
    assert_eq!(
        pg.psql(
            "app",
            &format!("SELECT string_agg(cache_type || ':' || version, ',' ORDER BY cache_type) FROM cache_storage WHERE project_id = {id_b}")
        )
        .unwrap(),
        "fundraising:1,strava:1"
    );
    // A role of no project sees nothing and may write nothing.
    pg.psql("app", "CREATE ROLE stranger LOGIN; GRANT tiercache_app TO stranger").unwrap();
    assert_eq!(pg.psql_as("app", "stranger", "SELECT count(*) FROM cache_storage").unwrap(), "0");
    assert_eq!(pg.psql_as("app", "stranger", "SELECT count(*) FROM projects").unwrap(), "0");
    assert_fails(pg.psql_as("app", "stranger", &write_to(&id_a, "x", 1, "{}", None)), not_b);
    // A role without tiercache_app has no access at all.
    pg.psql("app", "CREATE ROLE nobody LOGIN").unwrap();
    assert_fails(pg.psql_as("app", "nobody", "SELECT 1 FROM cache_storage"), "permission denied");
    assert_fails(pg.psql_as("app", "nobody", "SELECT 1 FROM projects"), "permission denied");
    assert_fails(pg.psql_as("app", "nobody", &write_to(&id_a, "x", 1, "{}", None)), "permission denied");
}

/// `tiercache_write_cache` in both of its modes, as a project role: the version guard
/// (NULL) and the compare-and-set on the row's version (an absent row counting as 0).
#[test]
fn the_write_function_guards_versions_and_compares_and_sets() {
    let pg = cluster_with_schema();
    add_project_roles(&pg, "app", &["a"]);
    let a = |sql: &str| pg.psql_as("app", "role_a", sql).unwrap();
    let row =
        || pg.psql("app", "SELECT version || ' ' || (data->>'n') FROM cache_storage WHERE cache_type = 'c'").unwrap();
    let body = |n: i64| format!(r#"{{"n":{n}}}"#);

    // The guard: written when there is no row or above it; an equal or lower version is
    // not written, and the answer says what the row holds.
    assert_eq!(a(&write("a", "c", 3, &body(3), None)), format!("t|3|{}", sum_of(3)));
    assert_eq!(a(&write("a", "c", 3, &body(30), None)), format!("f|3|{}", sum_of(3)));
    assert_eq!(a(&write("a", "c", 2, &body(2), None)), format!("f|3|{}", sum_of(3)));
    assert_eq!(row(), "3 3");
    assert_eq!(a(&write("a", "c", 4, &body(4), None)), format!("t|4|{}", sum_of(4)));

    // Compare-and-set: written only over exactly the expected version.
    assert_eq!(a(&write("a", "c", 6, &body(6), Some(3))), format!("f|4|{}", sum_of(4)), "stale expectation");
    assert_eq!(a(&write("a", "c", 5, &body(5), Some(0))), format!("f|4|{}", sum_of(4)), "the row exists");
    assert_eq!(row(), "4 4");
    assert_eq!(a(&write("a", "c", 5, &body(5), Some(4))), format!("t|5|{}", sum_of(5)));
    assert_eq!(row(), "5 5");
    // An absent row counts as 0.
    assert_eq!(a(&write("a", "new", 2, "{}", Some(1))), "f|0|", "no row is version 0");
    assert_eq!(a(&write("a", "new", 1, "{}", Some(0))), format!("t|1|{}", sum_of(1)));
    // The new version must be above the expected one.
    assert_fails(pg.psql_as("app", "role_a", &write("a", "c", 5, &body(5), Some(5))), "must be above");
    assert_fails(pg.psql_as("app", "role_a", &write("a", "c", 7, &body(7), Some(-1))), "must be above");
    // The constraints still hold through the function (a permanent error for a save).
    assert_fails(
        pg.psql_as("app", "role_a", &write("a", "Bad Name", 9, "{}", None)),
        "cache_storage_cache_type_format",
    );
    // Every write is audited under the calling role.
    assert_eq!(
        pg.psql(
            "app",
            "SELECT string_agg(db_user || ':' || operation || ':' || new_version, ',' ORDER BY id) FROM cache_audit"
        )
        .unwrap(),
        "role_a:INSERT:3,role_a:UPDATE:4,role_a:UPDATE:5,role_a:INSERT:1"
    );
    // Concurrent compare-and-sets on one version: exactly one wins.
    let pg = &pg;
    let both: Vec<String> = std::thread::scope(|s| {
        let h: Vec<_> = (0..2)
            .map(|i| {
                s.spawn(move || pg.psql_as("app", "role_a", &write("a", "c", 6 + i, &body(6 + i), Some(5))).unwrap())
            })
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(both.iter().filter(|r| r.starts_with("t|")).count(), 1, "{both:?}");
}

/// A superuser or a BYPASSRLS role (Supabase's service_role) reads and writes every row
/// directly anyway, so the write functions let them write a project registered without
/// a db_role, as they always could; a plain project role still may not.
#[test]
fn roles_that_bypass_row_security_write_a_project_without_a_db_role() {
    let pg = cluster_with_schema();
    add_project_roles(&pg, "app", &["a"]);
    pg.psql(
        "app",
        "INSERT INTO projects (project_name) VALUES ('ownerless');
         CREATE ROLE svc LOGIN BYPASSRLS; GRANT tiercache_app TO svc;",
    )
    .unwrap();
    assert_eq!(pg.psql("app", &write("ownerless", "c", 1, "{}", None)).unwrap(), format!("t|1|{}", sum_of(1)));
    assert_eq!(
        pg.psql_as("app", "svc", &write("ownerless", "c", 2, "{}", None)).unwrap(),
        format!("t|2|{}", sum_of(2))
    );
    assert_fails(pg.psql_as("app", "role_a", &write("ownerless", "c", 3, "{}", None)), "is not the db_role");
}

/// A project role holds no privilege that takes a lock blocking another project's
/// writers: LOCK TABLE in any mode above ACCESS SHARE and row locks are refused, and
/// what it can hold (ACCESS SHARE on every table, advisory locks) does not stop
/// another project's writes.
#[test]
fn a_project_role_cannot_take_a_lock_that_blocks_another_project() {
    let pg = cluster_with_schema();
    add_project_roles(&pg, "app", &["a", "b"]);
    let b = |sql: &str| pg.psql_as("app", "role_b", sql);
    let tables = ["projects", "cache_storage", "cache_audit", "source_state"];
    for table in tables {
        for mode in [
            "ROW SHARE",
            "ROW EXCLUSIVE",
            "SHARE UPDATE EXCLUSIVE",
            "SHARE",
            "SHARE ROW EXCLUSIVE",
            "EXCLUSIVE",
            "ACCESS EXCLUSIVE",
        ] {
            assert_fails(b(&format!("BEGIN; LOCK TABLE {table} IN {mode} MODE; COMMIT;")), "permission denied");
        }
        for rows in ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"] {
            assert_fails(b(&format!("SELECT 1 FROM {table} {rows}")), "permission denied");
        }
        b(&format!("BEGIN; LOCK TABLE {table} IN ACCESS SHARE MODE; COMMIT;")).unwrap();
    }
    // No table privilege but SELECT, for any member of tiercache_app.
    assert_eq!(
        pg.psql(
            "app",
            "SELECT string_agg(DISTINCT privilege_type, ',') FROM information_schema.role_table_grants
             WHERE grantee IN ('tiercache_app', 'role_a', 'role_b') AND table_schema = 'public'"
        )
        .unwrap(),
        "SELECT"
    );
}
#[test]
fn audit_records_every_write_and_cannot_be_forged() {
    let pg = cluster_with_schema();
    add_project_roles(&pg, "app", &["a", "b"]);
    let a = |sql: &str| pg.psql_as("app", "role_a", sql);

    a(&write("a", "strava", 1, "{}", None)).unwrap();
    a(&write("a", "strava", 4, r#"{"x":1}"#, None)).unwrap();
    assert!(a(&write("a", "strava", 2, "{}", None)).unwrap().starts_with("f|"), "guarded: no write, no audit");
    // A delete reaches only the versions its caller knew: a newer save stays.
    assert_eq!(a("SELECT tiercache_delete_cache(id, 'strava', 3) FROM projects").unwrap(), "f");
    assert_eq!(a("SELECT tiercache_delete_cache(id, 'strava', 4) FROM projects").unwrap(), "t");
    pg.psql_as("app", "role_b", &write("b", "strava", 7, "{}", None)).unwrap();
    // SET ROLE counts as that role (the functions and the audit see the caller, not
    // their owner).
    pg.psql("app", &format!("SET ROLE role_a; {}", write("a", "fundraising", 1, "{}", None))).unwrap();

    let expected = "role_a|a|strava|INSERT||1\n\
                    role_a|a|strava|UPDATE|1|4\n\
                    role_a|a|strava|DELETE|4|\n\
                    role_b|b|strava|INSERT||7\n\
                    role_a|a|fundraising|INSERT||1";
    let query = "SELECT db_user, p.project_name, cache_type, operation, old_version, new_version
                 FROM cache_audit a JOIN projects p ON p.id = a.project_id ORDER BY a.id";
    assert_eq!(pg.psql("app", query).unwrap(), expected);
    assert_eq!(pg.psql("app", "SELECT bool_and(at IS NOT NULL AND at <= now()) FROM cache_audit").unwrap(), "t");

    // A reads only its own project's audit.
    assert_eq!(a("SELECT count(*), bool_and(db_user = 'role_a') FROM cache_audit").unwrap(), "4|t");
    // And cannot write it, whatever it claims.
    let id_a = a("SELECT id FROM projects").unwrap();
    assert_fails(
        a(&format!(
            "INSERT INTO cache_audit (db_user, project_id, cache_type, operation) VALUES ('role_b', {id_a}, 'strava', 'DELETE')"
        )),
        "permission denied",
    );
    assert_fails(a("UPDATE cache_audit SET db_user = 'x'"), "permission denied");
    assert_fails(a("DELETE FROM cache_audit"), "permission denied");
    assert_fails(a("TRUNCATE cache_audit"), "permission denied");
    // Nor call the trigger functions.
    assert_fails(a("SELECT public.tiercache_audit()"), "permission denied");
    // The audit outlives a deleted project (whose rows cascade away, audited).
    pg.psql("app", "DELETE FROM projects WHERE project_name = 'b'").unwrap();
    assert_eq!(
        pg.psql(
            "app",
            "SELECT string_agg(operation || ':' || db_user, ',' ORDER BY id) FROM cache_audit WHERE cache_type = 'strava' AND old_version = 7 OR new_version = 7"
        )
        .unwrap(),
        "INSERT:role_b,DELETE:postgres"
    );
}

#[test]
fn a_non_superuser_owner_applies_it_and_obeys_the_policies() {
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE ROLE tiercache_owner LOGIN CREATEROLE; CREATE DATABASE app OWNER tiercache_owner")
        .unwrap();
    let owner = |sql: &str| pg.psql_as("app", "tiercache_owner", sql);
    for _ in 0..2 {
        owner(&schema()).unwrap();
    }
    // FORCE: the owner sees only projects whose db_role it is, and can register its own
    // (a single-role deployment where the daemon runs as the owner).
    pg.psql("app", "INSERT INTO projects (project_name, db_role) VALUES ('other', 'someone')").unwrap();
    assert_eq!(owner("SELECT count(*) FROM projects").unwrap(), "0");
    // Registering a name another role holds does nothing, quietly: the daemon then
    // finds no project of its own and says so.
    assert_eq!(
        owner(
            "INSERT INTO projects (project_name, db_role) VALUES ('other', current_user)
             ON CONFLICT (project_name) DO NOTHING RETURNING id"
        )
        .unwrap(),
        ""
    );
    owner("INSERT INTO projects (project_name, db_role) VALUES ('mine', current_user) ON CONFLICT (project_name) DO NOTHING")
        .unwrap();
    assert_eq!(owner(&upsert("mine", "strava", 1, "{}")).unwrap(), "1");
    assert_eq!(owner("SELECT count(*) FROM cache_storage").unwrap(), "1");
    // It can create project roles and grant them tiercache_app...
    owner("CREATE ROLE role_p LOGIN IN ROLE tiercache_app").unwrap();
    // ...but, FORCEd, not register a project for another role: a superuser (or a
    // BYPASSRLS role, as Supabase's postgres) does that.
    assert_fails(owner("INSERT INTO projects (project_name, db_role) VALUES ('p', 'role_p')"), "row-level security");
    pg.psql("app", "INSERT INTO projects (project_name, db_role) VALUES ('p', 'role_p')").unwrap();
    // The write functions run as this FORCEd owner and still reach the caller's project
    // (and only it): the policies know the calling role.
    assert_eq!(pg.psql_as("app", "role_p", &write("p", "c", 1, "{}", None)).unwrap(), format!("t|1|{}", sum_of(1)));
    assert_eq!(
        pg.psql_as("app", "role_p", "SELECT tiercache_save_state(id, 'strava:c', '{}') FROM projects").unwrap(),
        ""
    );
    assert_eq!(pg.psql_as("app", "role_p", "SELECT count(*) FROM source_state").unwrap(), "1");
    assert_eq!(owner("SELECT count(*) FROM cache_storage").unwrap(), "1", "the owner still sees only its own");
    // The owner running the daemon itself writes through them too.
    assert_eq!(owner(&write("mine", "strava", 2, "{}", None)).unwrap(), format!("t|2|{}", sum_of(2)));
}

#[test]
fn refuses_the_seed_plans_table() {
    let pg = PgCluster::start();
    pg.create_database("app").unwrap();
    pg.psql(
        "app",
        "CREATE TABLE projects (
             id SERIAL PRIMARY KEY, project_name VARCHAR(100) NOT NULL UNIQUE, description TEXT,
             created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(), is_active BOOLEAN DEFAULT true);
         CREATE TABLE cache_storage (
             id SERIAL PRIMARY KEY, project_id INTEGER REFERENCES projects(id),
             cache_type VARCHAR(50) NOT NULL, data JSONB NOT NULL,
             last_fetch TIMESTAMP WITH TIME ZONE, last_rich_fetch TIMESTAMP WITH TIME ZONE,
             data_size INTEGER, cache_version VARCHAR(20) DEFAULT '1.0',
             retention_days INTEGER DEFAULT 30, metadata JSONB DEFAULT '{}',
             created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
             updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
             UNIQUE(project_id, cache_type));",
    )
    .unwrap();
    assert_fails(pg.psql_file("app", schema_path()), "the old app's table");
    // Nothing was half-applied.
    assert_eq!(pg.psql("app", "SELECT count(*) FROM pg_roles WHERE rolname = 'tiercache_app'").unwrap(), "0");
    // Renamed as the hint says, it applies; the seed's projects table gains db_role.
    pg.psql("app", "ALTER TABLE cache_storage RENAME TO cache_storage_seed").unwrap();
    pg.psql_file("app", schema_path()).unwrap();
    pg.psql_file("app", schema_path()).unwrap();
    assert_eq!(
        pg.psql(
            "app",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects' AND column_name = 'db_role'"
        )
        .unwrap(),
        "1"
    );
}

/// Roles and settings as a Supabase project has them, in a throwaway cluster: the Data
/// API's roles, an `auth` schema, and default privileges that give anon and
/// authenticated every right on new objects in `public`. `supa_owner` stands for
/// Supabase's `postgres` role (not a superuser; CREATEROLE and BYPASSRLS).
fn supabase_imitation() -> PgCluster {
    let pg = PgCluster::start();
    pg.psql(
        "postgres",
        "CREATE ROLE supa_owner LOGIN CREATEROLE CREATEDB BYPASSRLS;
         CREATE ROLE anon NOLOGIN NOINHERIT;
         CREATE ROLE authenticated NOLOGIN NOINHERIT;
         CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
         CREATE ROLE authenticator LOGIN NOINHERIT;
         GRANT anon, authenticated, service_role TO authenticator;
         GRANT anon, authenticated, service_role TO supa_owner;
         CREATE DATABASE supa OWNER supa_owner;",
    )
    .unwrap();
    pg.psql(
        "supa",
        "CREATE SCHEMA auth AUTHORIZATION supa_owner;
         CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS
             $$ SELECT nullif(current_setting('request.jwt.claims', true), '')::json->>'role' $$;
         GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
         GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
         ALTER DEFAULT PRIVILEGES FOR ROLE supa_owner IN SCHEMA public
             GRANT ALL ON TABLES TO anon, authenticated, service_role;
         ALTER DEFAULT PRIVILEGES FOR ROLE supa_owner IN SCHEMA public
             GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
         ALTER DEFAULT PRIVILEGES FOR ROLE supa_owner IN SCHEMA public
             GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;",
    )
    .unwrap();
    pg
}

#[test]
fn supabase_imitation_applies_twice_and_shuts_out_the_data_api_roles() {
    let pg = supabase_imitation();
    let owner = |sql: &str| pg.psql_as("supa", "supa_owner", sql);
    // The imitation works as Supabase's does: a new table is wide open to anon.
    owner("CREATE TABLE probe (x int); INSERT INTO probe VALUES (1)").unwrap();
    assert_eq!(pg.psql_as("supa", "authenticator", "SET ROLE anon; SELECT x FROM probe").unwrap(), "1");
    assert_eq!(
        pg.psql_as(
            "supa",
            "authenticator",
            r#"SET request.jwt.claims = '{"role":"authenticated"}'; SET ROLE authenticated; SELECT auth.role()"#
        )
        .unwrap(),
        "authenticated"
    );

    for _ in 0..2 {
        owner(&schema()).unwrap();
    }
    assert_eq!(
        pg.psql(
            "supa",
            "SELECT string_agg(tablename || '.' || policyname || ':' || array_to_string(roles, '+'), ',' ORDER BY tablename, policyname)
             FROM pg_policies WHERE policyname = 'tiercache_service_role'"
        )
        .unwrap(),
        "cache_audit.tiercache_service_role:service_role,\
         cache_storage.tiercache_service_role:service_role,\
         projects.tiercache_service_role:service_role,\
         source_state.tiercache_service_role:service_role"
    );

    // service_role (through the authenticator, as the Data API does) keeps working.
    let service = |sql: &str| {
        pg.psql_as(
            "supa",
            "authenticator",
            &format!(r#"SET request.jwt.claims = '{{"role":"service_role"}}'; SET ROLE service_role; {sql}"#),
        )
    };
    service("INSERT INTO projects (project_name, db_role) VALUES ('web', 'role_web')").unwrap();
    assert_eq!(service(&upsert("web", "strava", 1, r#"{"a":1}"#)).unwrap(), "1");
    assert_eq!(service("SELECT count(*) FROM cache_storage").unwrap(), "1");
    assert_eq!(service("SELECT db_user || ':' || operation FROM cache_audit").unwrap(), "service_role:INSERT");
    assert_fails(service("DELETE FROM cache_audit"), "permission denied");
    assert_fails(
        service("INSERT INTO cache_audit (project_id, cache_type, operation) VALUES (1, 'x', 'INSERT')"),
        "permission denied",
    );

    // anon and authenticated: denied everything, with or without a JWT claim.
    for role in ["anon", "authenticated"] {
        for table in ["projects", "cache_storage", "cache_audit"] {
            for prelude in [String::new(), format!(r#"SET request.jwt.claims = '{{"role":"{role}"}}';"#)] {
                assert_fails(
                    pg.psql_as(
                        "supa",
                        "authenticator",
                        &format!("{prelude} SET ROLE {role}; SELECT count(*) FROM {table}"),
                    ),
                    "permission denied",
                );
            }
        }
        assert_fails(
            pg.psql_as("supa", "authenticator", &format!("SET ROLE {role}; {}", upsert("web", "x", 1, "{}"))),
            "permission denied",
        );
        assert_fails(
            pg.psql_as("supa", "authenticator", &format!("SET ROLE {role}; SELECT nextval('cache_storage_id_seq')")),
            "permission denied",
        );
    }
    assert_eq!(
        pg.psql(
            "supa",
            "SELECT count(*) FROM information_schema.role_table_grants
             WHERE grantee IN ('anon', 'authenticated')
               AND table_name IN ('projects', 'cache_storage', 'cache_audit')"
        )
        .unwrap(),
        "0"
    );

    // No role of the Data API keeps a right that could wipe, stall or forge: no TRUNCATE,
    // TRIGGER or REFERENCES for service_role on any table, nothing at all for anon and
    // authenticated, and no setval on any sequence. The objects are every table of the
    // schema (each carries a "tiercache" comment, which is how schema.sql finds them).
    owner("DROP TABLE probe").unwrap();
    assert_eq!(
        pg.psql(
            "supa",
            "SELECT string_agg(c.relname, ',') FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
               AND obj_description(c.oid, 'pg_class') NOT LIKE 'tiercache%'"
        )
        .unwrap(),
        "",
        "every table of schema.sql carries a tiercache comment"
    );
    assert_eq!(
        pg.psql(
            "supa",
            "SELECT string_agg(grantee || ':' || table_name || ':' || privilege_type, ',' ORDER BY 1)
             FROM information_schema.role_table_grants
             WHERE table_schema = 'public'
               AND (grantee IN ('anon', 'authenticated')
                    OR (grantee = 'service_role' AND privilege_type IN ('TRUNCATE', 'TRIGGER', 'REFERENCES')))"
        )
        .unwrap(),
        ""
    );
    for (role, sequence) in [
        ("service_role", "cache_audit_id_seq"),
        ("service_role", "cache_storage_id_seq"),
        ("service_role", "projects_id_seq"),
        ("anon", "projects_id_seq"),
    ] {
        assert_eq!(
            pg.psql("supa", &format!("SELECT has_sequence_privilege('{role}', '{sequence}', 'UPDATE')")).unwrap(),
            "f",
            "{role} may setval {sequence}"
        );
    }
    assert_fails(service("TRUNCATE cache_storage"), "permission denied");
    assert_fails(
        service("CREATE TRIGGER stall BEFORE INSERT ON cache_audit FOR EACH ROW EXECUTE FUNCTION tiercache_audit()"),
        "permission denied",
    );
    assert_eq!(service("SELECT count(*) FROM cache_storage").unwrap(), "1", "TRUNCATE removed nothing");

    // A project role made as docs/database.md says (by the owner, in the SQL editor).
    owner(
        "CREATE ROLE role_web LOGIN PASSWORD 'x' IN ROLE tiercache_app;
         CREATE ROLE role_other LOGIN IN ROLE tiercache_app;",
    )
    .unwrap();
    let web = |sql: &str| pg.psql_as("supa", "role_web", sql);
    assert_eq!(web("SELECT data->>'a' FROM cache_storage").unwrap(), "1");
    assert_eq!(web(&write("web", "strava", 2, r#"{"a":2}"#, None)).unwrap(), format!("t|2|{}", sum_of(2)));
    assert_fails(web(&upsert("web", "strava", 3, "{}")), "permission denied");
    // The Data API's roles cannot call the write functions.
    for role in ["anon", "authenticated", "service_role"] {
        assert_fails(
            pg.psql_as("supa", "authenticator", &format!("SET ROLE {role}; {}", write("web", "x", 1, "{}", None))),
            "permission denied",
        );
    }
    assert_eq!(pg.psql_as("supa", "role_other", "SELECT count(*) FROM cache_storage").unwrap(), "0");
}

/// What a second application of the schema must leave exactly as it is: every
/// privilege, policy, function and trigger of the schema, and every row.
fn catalog_snapshot(pg: &PgCluster, db: &str) -> String {
    let queries = [
        "SELECT string_agg(c.relname || ':' || COALESCE(c.relacl::text, '-'), ',' ORDER BY c.relname)
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
        "SELECT string_agg(tablename || '.' || policyname || ':' || cmd || ':' || COALESCE(qual, '') || ':' ||
                COALESCE(with_check, ''), ',' ORDER BY tablename, policyname) FROM pg_policies",
        "SELECT string_agg(p.oid::regprocedure::text || ':' || md5(p.prosrc) || ':' || COALESCE(p.proacl::text, '-'),
                ',' ORDER BY p.oid::regprocedure::text) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace",
        "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal",
        "SELECT string_agg(cache_type || ':' || version || ':' || data::text, ',' ORDER BY id) FROM cache_storage",
        "SELECT count(*) FROM cache_audit",
    ];
    queries.iter().map(|q| pg.psql(db, q).unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn moves_a_database_made_by_the_previous_schema_and_a_second_apply_changes_nothing() {
    let pg = PgCluster::start();
    pg.create_database("app").unwrap();
    let previous = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/schema-before-functions.sql");
    pg.psql_file("app", &previous).unwrap();
    add_project_roles(&pg, "app", &["a"]);
    // As the previous documentation had it, or worse: a write right granted directly.
    pg.psql("app", "GRANT UPDATE, DELETE, TRUNCATE ON cache_storage, source_state TO role_a").unwrap();
    assert_eq!(pg.psql_as("app", "role_a", &upsert("a", "strava", 3, r#"{"kept":true}"#)).unwrap(), "3");
    pg.psql_as("app", "role_a", "BEGIN; LOCK TABLE cache_storage IN SHARE MODE; COMMIT;").unwrap();

    pg.psql_file("app", schema_path()).unwrap();
    let once = catalog_snapshot(&pg, "app");
    assert_eq!(pg.psql_file("app", schema_path()).unwrap(), "", "quiet the second time");
    assert_eq!(catalog_snapshot(&pg, "app"), once, "a second application changed something");

    let a = |sql: &str| pg.psql_as("app", "role_a", sql);
    assert_eq!(a("SELECT data->>'kept' FROM cache_storage").unwrap(), "true", "the row is kept");
    assert_fails(a(&upsert("a", "strava", 4, "{}")), "permission denied");
    assert_fails(a("BEGIN; LOCK TABLE cache_storage IN SHARE MODE; COMMIT;"), "permission denied");
    assert_fails(a("TRUNCATE source_state"), "permission denied");
    assert_eq!(a(&write("a", "strava", 4, r#"{"kept":"moved"}"#, Some(3))).unwrap(), format!("t|4|{}", sum_of(4)));
}
