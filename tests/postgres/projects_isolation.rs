//! Projects that share one Postgres cannot disturb each other (docs/security.md): a
//! notification forged by another project's role changes nothing, and a lock that
//! another role holds stops a project's refreshes for a few periods at most.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tiercache_testkit::{Daemon, PgCluster};

/// Two projects with their own least-privilege roles, as docs/database.md creates them.
fn two_projects(pg: &PgCluster) {
    pg.psql(
        DB,
        "CREATE ROLE tiercache_a LOGIN IN ROLE tiercache_app;
         CREATE ROLE tiercache_b LOGIN IN ROLE tiercache_app;
         INSERT INTO projects (project_name, db_role) VALUES ('a', 'tiercache_a'), ('b', 'tiercache_b');",
    )
    .unwrap();
}

/// `writer` saves "marker" and `follower` waits until it serves that version: whatever
/// was notified on the project's channel before has been followed by then.
fn follows_a_later_write(pg: &PgCluster, writer: &Daemon, follower: &Daemon) {
    let doc = json!({"written_by": writer.port()});
    let (v, _) = put_ok(writer, "marker", &doc);
    wait_for_row(pg, "a", "marker", v, &doc);
    wait_for("the other instance to follow the marker", Duration::from_secs(10), || {
        let served = follower.get_cache("marker").etag_version();
        seen(served, served == Some(v))
    });
}

#[test]
fn a_forged_notification_leaves_the_local_copies_and_a_real_delete_still_propagates() {
    let mut pg = cluster();
    two_projects(&pg);
    // "marker" shows that an instance has followed the writes notified after a forgery.
    let conf = Conf::new(pg.url(DB, "tiercache_a")).top("project = \"a\"").caches(&["strava", "marker"]);
    let a1 = conf.start();
    let mut a2 = conf.start();
    let doc = json!({"activities": [1, 2, 3]});
    let (v, _) = put_ok(&a1, "strava", &doc);
    wait_for_row(&pg, "a", "strava", v, &doc);
    wait_for("the other instance to adopt the save", Duration::from_secs(5), || {
        a2.cache_file("strava").exists().then_some(())
    });

    // Project b's role learns a's channel (project ids are visible to nobody else, but
    // small integers are easy to guess) and forges a delete of a version above any.
    let id = pg.psql(DB, "SELECT id FROM projects WHERE project_name = 'a'").unwrap();
    let forged = r#"{"cache":"strava","version":9223372036854775807,"op":"DELETE"}"#;
    for payload in [forged, "", "garbage"] {
        pg.psql_as(DB, "tiercache_b", &format!("SELECT pg_notify('tiercache_{id}', '{payload}')")).unwrap();
    }
    // Each instance then follows a real write made after the forgeries.
    follows_a_later_write(&pg, &a1, &a2);
    follows_a_later_write(&pg, &a2, &a1);
    for d in [&a1, &a2] {
        assert!(d.cache_file("strava").exists(), "a forged notification removed a file:\n{}", d.stdout());
        assert!(!d.stdout().contains("deleted by another instance"), "{}", d.stdout());
        let r = d.get_cache("strava");
        assert_eq!((r.status, r.header("x-cache-tier")), (200, Some("memory")), "{r:?}");
    }
    // The notifications a's instances send carry nothing another project could use.
    let (v2, _) = put_ok(&a1, "strava", &json!({"activities": [1, 2, 3, 4]}));
    wait_for("the second save to reach the other instance", Duration::from_secs(5), || {
        let served = get_ok(&a2, "strava").0;
        seen(served, served == v2)
    });

    // A real delete through one instance still empties the other.
    assert_eq!(a1.delete("/v1/caches/strava", &[]).status, 204);
    // The line is logged just after the file goes: both are waited for.
    wait_for("the delete to reach the other instance", Duration::from_secs(10), || {
        let (file, logged) = (a2.cache_file("strava").exists(), a2.stdout().contains("deleted by another instance"));
        seen(format!("file still there: {file}, logged: {logged}"), !file && logged)
    });

    // And with Postgres gone, a forged-but-ignored notification cost nothing: a copy
    // saved since is still served from the local tiers.
    let (v3, _) = put_ok(&a2, "strava", &json!({"after": "delete"}));
    wait_for_row(&pg, "a", "strava", v3, &json!({"after": "delete"}));
    pg.psql_as(DB, "tiercache_b", &format!("SELECT pg_notify('tiercache_{id}', '{forged}')")).unwrap();
    follows_a_later_write(&pg, &a1, &a2);
    pg.stop();
    a2.restart();
    assert_eq!(get_ok(&a2, "strava").2, json!({"after": "delete"}));
}

#[test]
fn a_lock_held_by_another_role_stops_refreshes_for_a_few_periods_at_most() {
    let pg = cluster();
    two_projects(&pg);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = format!("echo x >> {}; echo '{{\"n\": 1}}'", calls.display());
    // Project b's role takes a's predictable leadership key before a starts.
    let mut foreign = Session::open(&pg);
    foreign.run_until(
        "SET ROLE tiercache_b; SELECT pg_advisory_lock(hashtextextended('tiercache:a:tick', 0)); SELECT 'held';",
        "held",
        Duration::from_secs(10),
    );
    let a = Conf::new(pg.url(DB, "tiercache_a"))
        .top("project = \"a\"")
        .tables(&format!(
            "[[caches]]\nname = \"tick\"\nrefresh_every = \"1s\"\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\n",
            toml_str(&script)
        ))
        .start();
    let started = Instant::now();
    let count = || std::fs::read_to_string(&calls).map(|s| s.lines().count()).unwrap_or(0);
    wait_for("a refresh despite the foreign lock", Duration::from_secs(10), || {
        let n = count();
        seen(n, n >= 1)
    });
    let first = started.elapsed();
    assert!(first <= Duration::from_secs(6), "the first refresh came after {first:?}");
    // And the schedule keeps going while the lock is still held.
    let before = count();
    wait_for("two more refreshes while the lock is held", Duration::from_secs(6), || {
        let now = count();
        seen(format!("{before} refreshes, then {now}"), now >= before + 2)
    });
    assert!(a.stdout().contains("refreshing here anyway"), "says so:\n{}", a.stdout());
    foreign.release();
}
