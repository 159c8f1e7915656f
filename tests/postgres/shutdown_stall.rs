//! SIGTERM while Postgres is stalled by `LOCK TABLE cache_storage IN ACCESS EXCLUSIVE
//! MODE` held in another session: the drain waits within `shutdown.timeout`; what does
//! not make it stays on disk and the next start sends it.

use crate::helpers::{
    cluster, put_ok, queue_depth, row, wait_for_lock_wait, wait_for_row, wait_queue_empty, Conf, Session, DB,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::Signal;
use tiercache_testkit::{Daemon, PgCluster};

const CACHES: [&str; 3] = ["s1", "s2", "s3"];

/// One save per cache that reaches Postgres (so the project and the rows exist), then
/// the lock, then a few more saves per cache that cannot reach it. Returns the lock and
/// the last acknowledged (version, document) per cache.
fn stall(pg: &PgCluster, d: &Daemon) -> (Session, Vec<(u64, Value)>) {
    for name in CACHES {
        let (v, _) = put_ok(d, name, &json!({"cache": name, "i": 0}));
        wait_for_row(pg, "default", name, v, &json!({"cache": name, "i": 0}));
    }
    let lock = Session::lock_cache_storage(pg);
    let mut last = Vec::new();
    for name in CACHES {
        let mut acked = (0, Value::Null);
        for i in 1..=3 {
            let doc = json!({"cache": name, "i": i});
            acked = (put_ok(d, name, &doc).0, doc);
        }
        last.push(acked);
    }
    // The writes are stuck behind the lock.
    wait_for_lock_wait(pg);
    assert_eq!(queue_depth(d), CACHES.len() as u64);
    (lock, last)
}

/// SIGTERM, then the exit code and how long the exit took (at most 15 s).
fn sigterm_and_wait(d: &mut Daemon) -> (Option<i32>, Duration) {
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(15));
    (code, t0.elapsed())
}

/// Starts `d` again and waits until it has sent `last` (per cache, what [`stall`]
/// returned) to Postgres.
fn next_start_sends(pg: &PgCluster, d: &mut Daemon, last: &[(u64, Value)]) {
    d.start_again();
    wait_queue_empty(d, Duration::from_secs(15));
    for (name, (v, doc)) in CACHES.iter().zip(last) {
        wait_for_row(pg, "default", name, *v, doc);
    }
}

#[test]
fn sigterm_drains_once_the_lock_is_released_within_the_timeout() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).tables("[shutdown]\ntimeout = \"10s\"\n").start();
    let (lock, last) = stall(&pg, &d);

    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.is_running(), "the daemon must wait for the drain, not exit with saves pending");
    assert_eq!(
        d.try_request("GET", "/readyz", None, &[]).map(|r| r.status).unwrap_or(503),
        503,
        "not ready while stopping"
    );
    lock.release();

    let code = d.wait_exit(Duration::from_secs(15));
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "exit after the drain; stdout:\n{}", d.stdout());
    assert!(took < Duration::from_secs(10), "took {took:?}, beyond shutdown.timeout");
    for (name, (v, doc)) in CACHES.iter().zip(&last) {
        let r = row(&pg, name).unwrap();
        assert_eq!((r.version, &r.data), (*v, doc), "{name} is current in Postgres at exit");
    }
}

#[test]
fn a_lock_held_past_the_timeout_leaves_saves_for_the_next_start() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).tables("[shutdown]\ntimeout = \"3s\"\n").start();
    let (lock, last) = stall(&pg, &d);

    let (code, took) = sigterm_and_wait(&mut d);
    assert_eq!(code, Some(0), "a clean exit though the drain did not finish; stdout:\n{}", d.stdout());
    assert!(took < Duration::from_millis(3000 + 2000), "took {took:?}: shutdown.timeout is 3 s");
    assert!(took >= Duration::from_millis(2500), "exited after {took:?}: it did not try to drain");
    d.wait_for_log("saying saves stay on disk", Duration::from_secs(1), |l| {
        l["level"] == "WARN" && l.to_string().contains("pending")
    });
    lock.release();

    // The next start sends what was left.
    next_start_sends(&pg, &mut d, &last);
}

#[test]
fn graceful_shutdown_off_exits_at_once_and_the_next_start_sends_the_saves() {
    let pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).tables("[shutdown]\ntimeout = \"10s\"\n");
    let mut d =
        Daemon::start(std::path::Path::new(crate::helpers::BIN), conf.options().env("GRACEFUL_SHUTDOWN", "false"));
    let (lock, last) = stall(&pg, &d);

    let (code, took) = sigterm_and_wait(&mut d);
    assert_eq!(code, Some(0), "stdout:\n{}", d.stdout());
    assert!(took < Duration::from_secs(3), "took {took:?}: without the graceful drain nothing is waited for");
    lock.release();

    next_start_sends(&pg, &mut d, &last);
}

/// Once SIGTERM arrives the refresher starts no new fetch, even while the drain waits
/// for a stopped Postgres and a 1 s schedule keeps coming due.
#[test]
fn no_fetch_starts_after_sigterm_while_the_drain_waits() {
    let mut pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = format!("echo x >> '{}'; echo '{{\"t\": 1}}'", calls.display());
    let mut d = Conf::new(pg.url(DB, "postgres"))
        .caches(&CACHES)
        .tables(&format!(
            "[shutdown]\ntimeout = \"4s\"\n[[caches]]\nname = \"ticker\"\nrefresh_every = \"1s\"\n\
             [caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\n",
            crate::helpers::toml_str(&script)
        ))
        .start();
    let count = || std::fs::read_to_string(&calls).map(|s| s.lines().count()).unwrap_or(0);
    crate::helpers::wait_for("two scheduled fetches", Duration::from_secs(10), || {
        let n = count();
        crate::helpers::seen(n, n >= 2)
    });
    pg.stop();
    put_ok(&d, "s1", &json!({"pending": true}));
    d.signal(Signal::SIGTERM);
    // A fetch already running at the signal may finish; none starts after it.
    std::thread::sleep(Duration::from_millis(300));
    let at_signal = count();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.is_running(), "the drain is still waiting for Postgres");
    assert_eq!(count(), at_signal, "fetches started during the drain");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0), "stdout:\n{}", d.stdout());
}

/// Postgres down at SIGINT: one line says what the drain waits for and how to stop it;
/// a second SIGINT stops at once, and the pending save stays on disk for the next start.
#[test]
fn a_second_signal_stops_the_drain_at_once_and_loses_nothing() {
    let mut pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).tables("[shutdown]\ntimeout = \"30s\"\n").start();
    let (v0, _) = put_ok(&d, "s1", &json!({"i": 0}));
    wait_for_row(&pg, "default", "s1", v0, &json!({"i": 0}));
    pg.stop();
    let (v1, _) = put_ok(&d, "s1", &json!({"i": 1}));
    d.signal(Signal::SIGINT);
    let draining = d.wait_for_log("the drain's first line", Duration::from_secs(10), |l| {
        crate::helpers::message(l).starts_with("draining 1 saves to Postgres")
    });
    assert!(crate::helpers::message(&draining).contains("signal again to stop now"), "{draining}");
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0), "stdout:\n{}", d.stdout());
    assert!(t0.elapsed() < Duration::from_secs(3), "the second signal took {:?}", t0.elapsed());
    let stdout = d.stdout();
    assert!(stdout.contains("second signal: stopping now"), "{stdout}");
    // No line per failed retry while draining (four a second before).
    let retries = d
        .log_lines()
        .iter()
        .filter(|l| l["level"] == "WARN" && crate::helpers::message(l).starts_with("Postgres write failed"))
        .count();
    assert!(retries <= 1, "a WARN per retry during the drain ({retries} lines):\n{stdout}");

    pg.start_again();
    d.start_again();
    wait_for_row(&pg, "default", "s1", v1, &json!({"i": 1}));
}

/// A project that is not registered cannot drain: the stop does not wait for it.
#[test]
fn an_unregistered_project_does_not_hold_up_the_stop() {
    let pg = cluster();
    pg.psql(DB, "CREATE ROLE tiercache_x LOGIN IN ROLE tiercache_app;").unwrap();
    let mut d = Conf::new(pg.url(DB, "tiercache_x"))
        .top("project = \"x\"")
        .caches(&CACHES)
        .tables("[shutdown]\ntimeout = \"30s\"\n")
        .start();
    put_ok(&d, "s1", &json!({"i": 1}));
    d.wait_for_log("an attempt to find the project unregistered", Duration::from_secs(10), |l| {
        l.to_string().contains("not registered")
    });
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0), "stdout:\n{}", d.stdout());
    assert!(t0.elapsed() < Duration::from_secs(5), "waited {:?} for a drain that cannot succeed", t0.elapsed());
    assert!(d.stdout().contains("cannot reach Postgres now"), "{}", d.stdout());
    assert!(d.cache_file("s1").exists(), "the save stays on disk");
}
