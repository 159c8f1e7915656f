//! Several instances on one Postgres (docs/scaling.md): refresh leadership through an
//! advisory lock, and invalidation through LISTEN/NOTIFY, with three real daemons.

use crate::helpers::*;
use std::path::Path;
use std::time::{Duration, Instant};
use tiercache_testkit::{Daemon, PgCluster};

/// A `command` source that appends a line to `calls` for every upstream call.
fn conf(pg: &PgCluster, calls: &Path, every: &str) -> Conf {
    let script = format!("echo x >> {}; echo '{{\"n\": 1}}'", calls.display());
    Conf::new(pg.url(DB, "postgres")).caches(&["shared"]).tables(&format!(
        "[[caches]]\nname = \"tick\"\nrefresh_every = {}\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\n",
        toml_str(every),
        toml_str(&script),
    ))
}

fn calls(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

fn three(c: &Conf) -> Vec<Daemon> {
    (0..3).map(|_| c.start()).collect()
}

/// The instance whose log says it took the lock of `tick` last.
fn leader(daemons: &[Daemon]) -> Option<usize> {
    daemons.iter().position(|d| d.stdout_all().contains("now leads the refreshes"))
}

#[test]
fn a_schedule_makes_one_upstream_call_per_period_in_total() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let calls_file = dir.path().join("calls");
    let daemons = three(&conf(&pg, &calls_file, "2s"));
    // Let startup settle (one overdue refresh, by whoever took the lock first).
    std::thread::sleep(Duration::from_secs(2));
    let before = calls(&calls_file);
    std::thread::sleep(Duration::from_secs(8));
    let during = calls(&calls_file) - before;
    // Four periods of 2 s: one call each in total (one more at the edges), never three per period.
    assert!((3..=6).contains(&during), "{during} upstream calls in 8 s with three instances on a 2 s schedule");
    let leaders = daemons.iter().filter(|d| d.stdout_all().contains("now leads the refreshes")).count();
    assert_eq!(leaders, 1, "exactly one instance leads");
}

#[test]
fn another_instance_takes_over_when_the_leader_dies() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let calls_file = dir.path().join("calls");
    let mut daemons = three(&conf(&pg, &calls_file, "2s"));
    let lead = wait_for("a leader", Duration::from_secs(10), || leader(&daemons));
    daemons[lead].kill9();
    let killed_at = Instant::now();
    let before = calls(&calls_file);
    let others: Vec<usize> = (0..3).filter(|i| *i != lead).collect();
    wait_for("a new leader", Duration::from_secs(6), || {
        others.iter().find(|i| daemons[**i].stdout_all().contains("now leads the refreshes")).copied()
    });
    wait_for("a refresh by the new leader", Duration::from_secs(6), || {
        let n = calls(&calls_file);
        seen(format!("{n} calls, {before} before"), n > before)
    });
    // Within one period (2 s) plus the takeover check and one tick.
    assert!(killed_at.elapsed() < Duration::from_secs(5), "takeover took {:?}", killed_at.elapsed());
}

#[test]
fn a_put_on_one_instance_is_served_by_the_others_within_a_second() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let daemons = three(&conf(&pg, &dir.path().join("calls"), "1h"));
    for (i, body) in [r#"{"v": 1}"#, r#"{"v": 2}"#].iter().enumerate() {
        // Warm every instance's memory first, so a stale copy would really be served.
        if i > 0 {
            for d in &daemons {
                assert_eq!(d.get_cache("shared").status, 200);
            }
        }
        let put = daemons[0].put_json("shared", body);
        assert_eq!(put.status, 200);
        let version = put.etag_version().unwrap();
        let saved = Instant::now();
        for d in &daemons[1..] {
            wait_for("the new version on another instance", Duration::from_millis(1500), || {
                let r = d.get_cache("shared");
                let done = r.status == 200 && r.etag_version() == Some(version);
                seen(r, done)
            });
        }
        assert!(saved.elapsed() < Duration::from_millis(1500), "took {:?}", saved.elapsed());
    }
}

#[test]
fn after_its_listen_connection_is_cut_an_instance_is_not_stale() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let daemons = three(&conf(&pg, &dir.path().join("calls"), "1h"));
    assert_eq!(daemons[0].put_json("shared", r#"{"v": 1}"#).status, 200);
    let b = &daemons[1];
    wait_for("B has v1", Duration::from_secs(3), || {
        let r = b.get_cache("shared");
        let done = r.status == 200;
        seen(r, done)
    });
    // Cut every LISTEN connection (named `tiercache-listen`); then write while B reconnects.
    let listeners = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tiercache-listen'";
    wait_for("three listeners", Duration::from_secs(10), || {
        let n = pg.psql(DB, listeners).map_or_else(|e| e.to_string(), |n| n.trim().to_owned());
        let done = n == "3";
        seen(n, done)
    });
    let cut = pg
        .psql(
            DB,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'tiercache-listen'",
        )
        .expect("terminate listeners");
    assert_eq!(cut.trim(), "3", "three LISTEN connections");
    let put = daemons[0].put_json("shared", r#"{"v": 2}"#);
    assert_eq!(put.status, 200);
    let version = put.etag_version().unwrap();
    wait_for("B reconnected and caught up", Duration::from_secs(10), || {
        let r = b.get_cache("shared");
        let done = r.etag_version() == Some(version);
        seen(r, done)
    });
    assert!(b.stdout_all().contains("LISTEN connection lost"), "B noticed the cut");
}

/// On-demand refreshes (SIGUSR1, `POST /refresh`) sent to every instance at once make
/// one upstream call in total: the instances that do not lead wait for the leader's
/// result through LISTEN/NOTIFY, and every instance serves it.
#[test]
fn on_demand_refreshes_of_several_instances_make_one_upstream_call() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let calls_file = dir.path().join("calls");
    let script = format!("echo x >> {}; sleep 1; echo \"{{\\\"n\\\": $(date +%s%N)}}\"", calls_file.display());
    let c = Conf::new(pg.url(DB, "postgres")).tables(&format!(
        "[[caches]]\nname = \"tick\"\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\n",
        toml_str(&script),
    ));
    let daemons: Vec<Daemon> = (0..2).map(|_| c.start()).collect();
    for d in &daemons {
        d.signal(tiercache_testkit::daemon::Signal::SIGUSR1);
    }
    let served = |d: &Daemon| {
        let r = d.get("/v1/caches/tick", &[]);
        (r.status == 200).then(|| r.json())
    };
    let first = wait_for("the first instance to serve the refresh", Duration::from_secs(10), || served(&daemons[0]));
    wait_for("the second instance to serve the same document", Duration::from_secs(10), || {
        let doc = served(&daemons[1]);
        let done = doc.as_ref() == Some(&first);
        seen(doc, done)
    });
    std::thread::sleep(Duration::from_secs(6)); // past the wait for the leader's result
    assert_eq!(calls(&calls_file), 1, "SIGUSR1 to both instances made more than one upstream call");

    for d in &daemons {
        let r = d.request("POST", "/v1/caches/tick/refresh", None, &[]);
        assert_eq!(r.status, 202, "{r:?}");
    }
    wait_for("both instances to serve the second refresh", Duration::from_secs(10), || {
        let docs: Vec<_> = daemons.iter().map(served).collect();
        let done = matches!(&docs[..], [Some(a), Some(b)] if a == b && *a != first);
        seen(docs, done)
    });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(calls(&calls_file), 2, "POST /refresh to both instances made more than one upstream call");
}
