//! A shared Postgres is a hostile neighbour: another project's role
//! can stall no one's writes; a resource error is an outage, never a dead letter; with
//! NOTIFY unavailable the instances still converge through the heads poll; a leader
//! whose source answers 304 stays the only one polling; a password changed under the
//! daemon keeps every save on disk and says so, once when it starts and once when it
//! ends. Project roles are made by docs/database.md's own recipe.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tiercache_testkit::fake_http::{FakeServer, Reply};
use tiercache_testkit::{Daemon, PgCluster, PgOptions};

/// Projects `a` and `b`, each with its role made by the documentation's recipe.
fn two_projects(pg: &PgCluster) {
    role_by_the_docs(pg, "tiercache_a", "a", "secret-a");
    role_by_the_docs(pg, "tiercache_b", "b", "secret-b");
}

/// `GET /v1/caches`' `postgres` object.
fn postgres_status(d: &Daemon) -> Value {
    d.get("/v1/caches", &[]).json()["postgres"].clone()
}

/// Failed write attempts so far (`tiercache_postgres_writes_total{result="error"}`).
fn failed_attempts(d: &Daemon) -> f64 {
    d.metric("tiercache_postgres_writes_total{result=\"error\"}").unwrap_or(0.0)
}

#[test]
fn another_project_s_role_holds_every_lock_it_may_and_saves_still_reach_postgres() {
    let pg = cluster();
    two_projects(&pg);
    let conf = Conf::new(pg.url(DB, "tiercache_a")).top("project = \"a\"").caches(&["doc"]);
    let a = conf.start();
    let (v, _) = put_ok(&a, "doc", &json!({"n": 0}));
    wait_for_row(&pg, "a", "doc", v, &json!({"n": 0}));

    // B may take no lock stronger than ACCESS SHARE on any tiercache table, nor lock a row.
    for table in ["projects", "cache_storage", "cache_audit", "source_state"] {
        for mode in [
            "ROW SHARE",
            "ROW EXCLUSIVE",
            "SHARE UPDATE EXCLUSIVE",
            "SHARE",
            "SHARE ROW EXCLUSIVE",
            "EXCLUSIVE",
            "ACCESS EXCLUSIVE",
        ] {
            let sql = format!("BEGIN; SET statement_timeout = 0; LOCK TABLE {table} IN {mode} MODE; COMMIT;");
            let e = pg.psql_as(DB, "tiercache_b", &sql).expect_err(&format!("B took {mode} on {table}"));
            assert!(e.message().contains("permission denied"), "{mode} on {table}: {e}");
        }
        let e = pg.psql_as(DB, "tiercache_b", &format!("SELECT 1 FROM {table} FOR KEY SHARE")).unwrap_err();
        assert!(e.message().contains("permission denied"), "{table}: {e}");
    }
    // B holds what it may, for as long as it likes: ACCESS SHARE on every table, the
    // migration's advisory lock and a's refresh-leadership key.
    let mut b = Session::open_as(&pg, "tiercache_b");
    b.run_until(
        "BEGIN; SET statement_timeout = 0;
         LOCK TABLE projects, cache_storage, cache_audit, source_state IN ACCESS SHARE MODE;
         SELECT pg_advisory_lock(hashtext('tiercache schema.sql'));
         SELECT pg_advisory_lock(hashtextextended('tiercache:a:doc', 0));
         SELECT 'held';",
        "held",
        Duration::from_secs(10),
    );
    // A's saves reach Postgres, each within seconds.
    for n in 1..=4 {
        let started = Instant::now();
        let (v, _) = put_ok(&a, "doc", &json!({"n": n}));
        wait_for_row(&pg, "a", "doc", v, &json!({"n": n}));
        assert!(started.elapsed() < Duration::from_secs(5), "save {n} took {:?}", started.elapsed());
    }
    // A source's state (a rotated token) is written through its function too.
    pg.psql_as(
        DB,
        "tiercache_a",
        "SET statement_timeout = '5s'; SELECT tiercache_save_state(id, 'strava:doc', '{}') FROM projects",
    )
    .expect("A's state write is not blocked");
    // A new instance of A becomes ready and serves the latest save.
    let a2 = conf.start();
    assert_eq!(get_ok(&a2, "doc").2, json!({"n": 4}));
    assert_eq!(row_of(&pg, "a", "doc").unwrap().data, json!({"n": 4}));
    b.release();
}

/// A trigger raising SQLSTATE 54000 ("too many notifications", the cluster-wide
/// notification queue full) on every write of `cache_storage` until the time in
/// `public.stall_until` (`until_sql` at first; the test moves it). It runs inside the
/// write function, whose search_path is pg_catalog: hence `public.`.
fn raise_54000_until(pg: &PgCluster, until_sql: &str) {
    pg.psql(
        DB,
        &format!(
            "CREATE TABLE stall_until (t timestamptz NOT NULL);
             INSERT INTO stall_until VALUES ({until_sql});
             CREATE FUNCTION stall_writes() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF now() < (SELECT t FROM public.stall_until) THEN
                     RAISE EXCEPTION 'too many notifications in the NOTIFY queue' USING ERRCODE = '54000';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER stall BEFORE INSERT OR UPDATE ON cache_storage
                 FOR EACH ROW EXECUTE FUNCTION stall_writes();"
        ),
    )
    .unwrap();
}

#[test]
fn a_resource_error_for_ten_seconds_delays_saves_but_loses_and_dead_letters_none() {
    let pg = cluster();
    two_projects(&pg);
    let d = Conf::new(pg.url(DB, "tiercache_a"))
        .top("project = \"a\"")
        .caches(&["x", "y"])
        .retry("initial_interval = \"100ms\"\nmax_interval = \"500ms\"\nmax_attempts = 3")
        .start();
    // The stall lasts 10 s, or as long as the checks below need on a busy machine.
    raise_54000_until(&pg, "'infinity'");
    let stalled_at = Instant::now();
    let mut last = Vec::new();
    for n in 1..=3 {
        for cache in ["x", "y"] {
            let body = json!({"cache": cache, "n": n});
            let (v, _) = put_ok(&d, cache, &body);
            last.push((cache, v, body));
        }
    }
    last.drain(..last.len() - 2);
    // Well past retry.max_attempts.
    wait_for("many failed attempts", Duration::from_secs(60), || {
        let n = failed_attempts(&d);
        seen(n, n >= 10.0)
    });
    assert!(d.files_in("dead-letter").is_empty(), "dead-lettered during a resource error");
    assert_eq!(d.metric("tiercache_postgres_up"), Some(0.0));
    let status = postgres_status(&d);
    assert_eq!(status["up"], false, "{status}");
    assert!(status["error"].as_str().is_some_and(|e| e.contains("54000")), "{status}");
    let start = d.wait_for_log("the outage's start", Duration::from_secs(5), |l| {
        message(l).starts_with("saves cannot reach Postgres")
    });
    assert_eq!(start["alert"], true, "{start}");
    assert!(start["error"].as_str().is_some_and(|e| e.contains("54000")), "the cause: {start}");
    assert!(start["fix"].as_str().is_some_and(|f| f.contains("limit")), "the fix: {start}");
    for (cache, _, _) in &last {
        assert_eq!(d.get(&format!("/v1/caches/{cache}/meta"), &[]).json()["postgres_synced"], false);
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(stalled_at.elapsed()));
    pg.psql(DB, "UPDATE public.stall_until SET t = '-infinity'").unwrap();

    // Once it passes, every last save arrives; nothing was lost or dead-lettered.
    for (cache, v, body) in &last {
        wait_for_row(&pg, "a", cache, *v, body);
    }
    wait_queue_empty(&d, Duration::from_secs(10));
    for (cache, v, _) in &last {
        let meta = d.get(&format!("/v1/caches/{cache}/meta"), &[]).json();
        assert_eq!((meta["version"].as_u64(), meta["postgres_synced"].as_bool()), (Some(*v), Some(true)), "{meta}");
    }
    assert!(d.files_in("dead-letter").is_empty());
    assert_eq!(d.metric("tiercache_dead_letters_total{cache=\"x\"}"), None);
    d.wait_for_log("the outage's end", Duration::from_secs(5), |l| message(l) == "saves reach Postgres again");
    assert_eq!(d.metric("tiercache_postgres_up"), Some(1.0));
    assert_eq!(postgres_status(&d)["up"], true);
}

#[test]
fn with_notify_unavailable_two_instances_converge_within_the_heads_poll_period() {
    let pg = cluster();
    two_projects(&pg);
    // No role but a superuser may NOTIFY any more: every hint the daemons send fails.
    pg.psql(DB, "REVOKE EXECUTE ON FUNCTION pg_notify(text, text) FROM PUBLIC").unwrap();
    let conf = Conf::new(pg.url(DB, "tiercache_a"))
        .top("project = \"a\"")
        .postgres("heads_poll_interval = \"1s\"")
        .caches(&["shared"]);
    let a1 = conf.start();
    let a2 = conf.start();
    for n in 1..=3 {
        // Warm a2's memory, so that a stale copy would really be served.
        if n > 1 {
            assert_eq!(a2.get_cache("shared").status, 200);
        }
        let body = json!({"n": n});
        let (v, _) = put_ok(&a1, "shared", &body);
        wait_for_row(&pg, "a", "shared", v, &body);
        let arrived = Instant::now();
        wait_for("the other instance to serve the save", Duration::from_secs(10), || {
            let served = a2.get_cache("shared").etag_version();
            seen(served, served == Some(v))
        });
        // One poll period (1 s), plus a read and the load of a busy machine; without the
        // poll it would take memory.ttl (5 min).
        assert!(arrived.elapsed() < Duration::from_secs(4), "save {n} took {:?} to converge", arrived.elapsed());
    }
    assert!(a1.metric("tiercache_notify_failures_total").unwrap_or(0.0) >= 3.0, "{}", a1.metrics());
    assert!(a1.stdout_all().contains("could not notify the other instances of a write"), "the failed hint is logged");
    for d in [&a1, &a2] {
        assert_eq!(d.get("/healthz", &[]).status, 200, "healthz stays truthful");
        assert!(d.files_in("dead-letter").is_empty());
    }
}

/// An `http` source that answers 200 with an ETag once, then 304 to that ETag.
fn not_modified_upstream() -> FakeServer {
    FakeServer::start(|req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            return Reply::json(304, "").header("ETag", "\"v1\"");
        }
        Reply::ok(&json!({"total": "10.00"})).header("ETag", "\"v1\"")
    })
}

#[test]
fn two_instances_behind_one_304_source_make_one_call_per_period_and_no_takeover() {
    let pg = cluster();
    let up = not_modified_upstream();
    let conf = Conf::new(pg.url(DB, "postgres")).tables(&format!(
        "[[caches]]\nname = \"total\"\nrefresh_every = \"2s\"\n[caches.source]\nkind = \"http\"\nurl = {}\n",
        toml_str(&up.url("/total"))
    ));
    let a = conf.start();
    let b = conf.start();
    // Let the first fetch (a 200) and a few 304s happen.
    wait_for("a 304", Duration::from_secs(15), || {
        let n = up.requests().len();
        let done = up.requests().iter().any(|r| r.header("if-none-match").is_some());
        seen(format!("{n} upstream requests"), done)
    });
    let before = up.requests().len();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let calls = up.requests().len() - before;
    let periods = window.elapsed().as_secs_f64() / 2.0;
    // One call per period in total (one more at either edge), never one per instance.
    assert!(
        (calls as f64) <= periods + 2.0,
        "{calls} upstream calls in {:?} with two instances on a 2 s schedule",
        window.elapsed()
    );
    assert!((calls as f64) >= periods / 2.0, "the leader stopped polling: {calls} calls");
    for d in [&a, &b] {
        assert!(!d.stdout_all().contains("refreshing here anyway"), "a takeover was logged:\n{}", d.stdout_all());
    }
    // The instance that does not lead follows the leader's checks: its last_fetch moves.
    for d in [&a, &b] {
        let meta = d.get("/v1/caches/total/meta", &[]).json();
        let last = meta["last_fetch"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let age = last.map(|t| chrono::Utc::now().signed_duration_since(t));
        assert!(age.is_some_and(|a| a < chrono::Duration::seconds(8)), "last_fetch is old: {meta}");
    }
}

/// Terminates every session of `role` until none is left three checks in a row: a
/// session that was authenticating (with the old password) while the role changed shows
/// up only once it has started, and would otherwise go on writing.
fn cut_sessions(pg: &PgCluster, role: &str) {
    let sql = format!(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}') t"
    );
    let mut quiet = 0;
    wait_for(&format!("no session of {role} left"), Duration::from_secs(20), || {
        let cut = pg.psql(DB, &sql).unwrap();
        quiet = if cut.trim() == "0" { quiet + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(100));
        seen(cut, quiet >= 3)
    });
}

#[test]
fn a_password_changed_under_the_daemon_keeps_every_save_on_disk_and_converges_once_fixed() {
    let pg = cluster_with(PgOptions::new().tcp_password_auth(true));
    role_by_the_docs(&pg, "tiercache_a", "a", "first-secret");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "first-secret\n").unwrap();
    let d = Conf::new(pg.tcp_url(DB, "tiercache_a"))
        .top("project = \"a\"")
        .postgres(&format!("password_file = {}\nsslmode = \"disable\"", toml_str(&pw.display().to_string())))
        .retry("initial_interval = \"100ms\"\nmax_interval = \"500ms\"\nmax_attempts = 3")
        .caches(&["doc"])
        .start();
    let (v1, _) = put_ok(&d, "doc", &json!({"n": 1}));
    wait_for_row(&pg, "a", "doc", v1, &json!({"n": 1}));

    // The role's password changes under the daemon; its sessions are cut.
    pg.psql(DB, "ALTER ROLE tiercache_a PASSWORD 'rotated-elsewhere'").unwrap();
    cut_sessions(&pg, "tiercache_a");
    let mut saves = Vec::new();
    for n in 2..=4 {
        saves.push(put_ok(&d, "doc", &json!({"n": n})).0);
    }
    let last = *saves.last().unwrap();
    // The outage starts (its first cause may be the cut session, 57P01) and then says
    // it is the password, with the fix.
    let start = d.wait_for_log("the outage's line naming the password", Duration::from_secs(30), |l| {
        message(l).contains("cannot reach Postgres") && l["error"].as_str().is_some_and(|e| e.contains("28P01"))
    });
    assert_eq!(start["alert"], true, "{start}");
    assert!(start["fix"].as_str().is_some_and(|f| f.contains("password")), "the fix: {start}");
    // Three times retry.max_attempts = 3: nothing is dead-lettered, the save waits on
    // disk. (Each attempt is a SCRAM handshake, slow on a loaded machine: wait for the
    // count, not for a time.)
    wait_for("many failed attempts", Duration::from_secs(120), || {
        let n = failed_attempts(&d);
        seen(n, n >= 9.0)
    });
    assert!(d.files_in("dead-letter").is_empty(), "a save was dead-lettered");
    assert_eq!(d.metric("tiercache_postgres_up"), Some(0.0), "{}", d.metrics());
    let meta = d.get("/v1/caches/doc/meta", &[]).json();
    assert_eq!((meta["version"].as_u64(), meta["postgres_synced"].as_bool()), (Some(last), Some(false)), "{meta}");
    let envelope: Value = serde_json::from_slice(&std::fs::read(d.cache_file("doc")).unwrap()).unwrap();
    assert_eq!((envelope["version"].as_u64(), &envelope["data"]), (Some(last), &json!({"n": 4})));
    assert_eq!(row_of(&pg, "a", "doc").unwrap().version, v1, "Postgres still holds the old version");
    let status = postgres_status(&d);
    assert!(status["error"].as_str().is_some_and(|e| e.contains("password authentication failed")), "{status}");
    let out = d.run(&["status"], &[]);
    let text = &out.stdout;
    assert!(text.contains("postgres: DOWN") && text.contains("fix:"), "{text}");
    // The LISTEN session's retries say why too.
    let listen = d.wait_for_log("a LISTEN warning with its cause", Duration::from_secs(30), |l| {
        message(l).contains("LISTEN")
            && l["level"] == "WARN"
            && l["error"].as_str().is_some_and(|e| e.contains("password"))
    });
    eprintln!("LISTEN says: {listen}");

    // The password is fixed: everything converges, still without a dead letter.
    pg.psql(DB, "ALTER ROLE tiercache_a PASSWORD 'first-secret'").unwrap();
    wait_for_row(&pg, "a", "doc", last, &json!({"n": 4}));
    wait_for("meta to say synced", Duration::from_secs(10), || {
        let meta = d.get("/v1/caches/doc/meta", &[]).json();
        let done = meta["postgres_synced"] == true;
        seen(meta, done)
    });
    d.wait_for_log("the outage's end", Duration::from_secs(10), |l| message(l) == "saves reach Postgres again");
    assert_eq!(d.metric("tiercache_postgres_up"), Some(1.0));
    assert!(d.files_in("dead-letter").is_empty());
    let starts = d.log_lines().iter().filter(|l| message(l).starts_with("saves cannot reach Postgres")).count();
    assert_eq!(starts, 1, "one line when it starts, not one per attempt");
}

#[test]
fn a_project_unregistered_under_the_daemon_is_logged_when_it_starts_and_when_it_ends() {
    let pg = cluster();
    two_projects(&pg);
    let d = Conf::new(pg.url(DB, "tiercache_a"))
        .top("project = \"a\"")
        .retry("initial_interval = \"100ms\"\nmax_interval = \"500ms\"\nmax_attempts = 3")
        .caches(&["doc"])
        .start();
    let (v1, _) = put_ok(&d, "doc", &json!({"n": 1}));
    wait_for_row(&pg, "a", "doc", v1, &json!({"n": 1}));
    // The operator hands the project to another role by mistake.
    pg.psql(DB, "UPDATE projects SET db_role = 'tiercache_b_new' WHERE project_name = 'a'").unwrap();
    let (v2, _) = put_ok(&d, "doc", &json!({"n": 2}));
    let start = d.wait_for_log("the outage's start", Duration::from_secs(15), |l| {
        message(l).starts_with("saves cannot reach Postgres")
    });
    assert!(start["error"].as_str().is_some_and(|e| e.contains("28T01")), "{start}");
    assert!(start["fix"].as_str().is_some_and(|f| f.contains("register")), "{start}");
    wait_for("many failed attempts", Duration::from_secs(120), || {
        let n = failed_attempts(&d);
        seen(n, n >= 9.0)
    });
    assert!(d.files_in("dead-letter").is_empty());
    pg.psql(DB, "UPDATE projects SET db_role = 'tiercache_a' WHERE project_name = 'a'").unwrap();
    wait_for_row(&pg, "a", "doc", v2, &json!({"n": 2}));
    d.wait_for_log("the outage's end", Duration::from_secs(10), |l| message(l) == "saves reach Postgres again");
    assert!(d.files_in("dead-letter").is_empty());
}
