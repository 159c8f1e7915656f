//! sd_notify during a shutdown drain: with saves waiting for Postgres, SIGTERM sends
//! `STOPPING=1`, then `EXTEND_TIMEOUT_USEC` so systemd does not kill the daemon
//! before the drain's own deadline (`shutdown.timeout`).

use crate::helpers::{cluster, put_ok, queue_depth, row, wait_for_lock_wait, wait_for_row, Conf, Session, BIN, DB};
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::Signal;
use tiercache_testkit::Daemon;

/// Collects the datagrams sent to a socket in a fresh directory.
fn listen() -> (tempfile::TempDir, String, Arc<Mutex<Vec<String>>>) {
    let dir = tempfile::Builder::new().prefix("tc-notify-").tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            sink.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (dir, path.to_string_lossy().into_owned(), received)
}

/// The value of the first line `KEY=...` in a message after index `from`, waiting up to
/// `timeout`; returns (index, value).
#[track_caller]
fn wait_line(received: &Mutex<Vec<String>>, from: usize, key: &str, timeout: Duration) -> (usize, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let all = received.lock().unwrap().clone();
        for (i, m) in all.iter().enumerate().skip(from) {
            if let Some(v) = m.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))) {
                return (i, v.to_owned());
            }
        }
        assert!(Instant::now() < deadline, "no {key}= within {timeout:?}; received: {all:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_draining_shutdown_asks_systemd_for_more_time() {
    let pg = cluster();
    let (_dir, socket, received) = listen();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["s1", "s2"]).tables("[shutdown]\ntimeout = \"10s\"\n");
    let mut d = Daemon::start(Path::new(BIN), conf.options().env("NOTIFY_SOCKET", &socket));
    let (ready, status) = wait_line(&received, 0, "STATUS", Duration::from_secs(5));
    assert_eq!(status, "ready: 2 caches, queue 0");
    assert!(received.lock().unwrap()[ready].lines().any(|l| l == "READY=1"));

    for name in ["s1", "s2"] {
        let (v, _) = put_ok(&d, name, &json!({"i": 0}));
        wait_for_row(&pg, "default", name, v, &json!({"i": 0}));
    }
    let lock = Session::lock_cache_storage(&pg);
    let mut last = Vec::new();
    for name in ["s1", "s2"] {
        last.push(put_ok(&d, name, &json!({"i": 1})).0);
    }
    wait_for_lock_wait(&pg);
    assert_eq!(queue_depth(&d), 2);

    d.signal(Signal::SIGTERM);
    let (stopping, _) = wait_line(&received, ready, "STOPPING", Duration::from_secs(5));
    let (_, usec) = wait_line(&received, stopping, "EXTEND_TIMEOUT_USEC", Duration::from_secs(5));
    let usec: u64 = usec.parse().expect("a number of microseconds");
    assert!(
        (5_000_000..=15_000_000).contains(&usec),
        "extended up to the drain's deadline (10 s) plus a margin, got {usec} µs"
    );
    lock.release();
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "stdout:\n{}", d.stdout());
    for (name, v) in ["s1", "s2"].iter().zip(last) {
        assert!(row(&pg, name).is_some_and(|r| r.version == v), "{name} drained before the exit");
    }
}

#[test]
fn status_follows_the_queue_between_health_checks() {
    let pg = cluster();
    let (_dir, socket, received) = listen();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["s1"]);
    // WatchdogSec=30s: a health check every 15 s, far beyond the waits below.
    let opts = conf.options().env("NOTIFY_SOCKET", &socket).env("WATCHDOG_USEC", "30000000");
    let d = Daemon::start(Path::new(BIN), opts);
    let (ready, status) = wait_line(&received, 0, "STATUS", Duration::from_secs(5));
    assert_eq!(status, "ready: 1 cache, queue 0");

    let lock = Session::lock_cache_storage(&pg);
    let (v, _) = put_ok(&d, "s1", &json!({"i": 1}));
    let (queued, status) = wait_line(&received, ready + 1, "STATUS", Duration::from_secs(4));
    assert_eq!(status, "ready: 1 cache, queue 1");
    lock.release();
    wait_for_row(&pg, "default", "s1", v, &json!({"i": 1}));
    let (_, status) = wait_line(&received, queued + 1, "STATUS", Duration::from_secs(4));
    assert_eq!(status, "ready: 1 cache, queue 0");
}
