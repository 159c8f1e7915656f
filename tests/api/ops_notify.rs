//! systemd notifications: on a Unix datagram socket the test binds and gives the
//! daemon as `NOTIFY_SOCKET`, with `WATCHDOG_USEC` set: `READY=1` after startup,
//! `WATCHDOG=1` pings, `RELOADING=1` with `MONOTONIC_USEC` then `READY=1` on SIGHUP,
//! `STOPPING=1` on SIGTERM; a wedged file tier stops the pings.

use crate::helpers::BIN;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::Signal;
use tiercache_testkit::{Daemon, DaemonOptions};

/// Every datagram received, with its arrival time.
#[derive(Clone)]
struct Notifications {
    received: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: Arc<tempfile::TempDir>,
    path: String,
}

impl Notifications {
    /// Binds `notify.sock` in a fresh directory and collects on a thread.
    fn listen() -> Self {
        let dir = tempfile::Builder::new().prefix("tc-notify-").tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        Self { received, _dir: Arc::new(dir), path: path.to_string_lossy().into_owned() }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.received.lock().unwrap().clone()
    }

    fn count(&self, line: &str) -> usize {
        self.all().iter().filter(|(_, m)| has(m, line)).count()
    }

    /// Waits until a message after index `from` has `line`; returns its index.
    #[track_caller]
    fn wait(&self, from: usize, line: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.all().iter().skip(from).position(|(_, m)| has(m, line)) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no {line:?} within {timeout:?}; received: {:#?}", self.texts());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn texts(&self) -> Vec<String> {
        self.all().into_iter().map(|(_, m)| m).collect()
    }
}

/// Whether a notification has the line `line` exactly, or starting with what precedes
/// a final `*`.
fn has(message: &str, line: &str) -> bool {
    match line.strip_suffix('*') {
        Some(prefix) => message.lines().any(|l| l.starts_with(prefix)),
        None => message.lines().any(|l| l == line),
    }
}

fn options(n: &Notifications) -> DaemonOptions {
    DaemonOptions::new("").env("NOTIFY_SOCKET", &n.path).env("WATCHDOG_USEC", "500000")
}

#[test]
fn ready_watchdog_reload_and_stopping_arrive_in_order() {
    let n = Notifications::listen();
    let mut d = Daemon::start(Path::new(BIN), options(&n));

    let ready = n.wait(0, "READY=1", Duration::from_secs(5));
    let first = &n.all()[ready].1;
    assert!(has(first, "STATUS=ready: 2 caches, postgres off"), "READY=1 comes with a one-line status: {first:?}");
    assert_eq!(n.count("READY=1"), 1, "{:#?}", n.texts());
    assert!(n.all()[..ready].iter().all(|(_, m)| !has(m, "WATCHDOG=1")), "no ping before READY=1: {:#?}", n.texts());

    // Pings every WATCHDOG_USEC / 2 = 250 ms.
    let mut at = ready;
    for _ in 0..4 {
        at = n.wait(at + 1, "WATCHDOG=1", Duration::from_secs(3));
    }

    d.signal(Signal::SIGHUP);
    let reloading = n.wait(at, "RELOADING=1", Duration::from_secs(5));
    let msg = &n.all()[reloading].1;
    let usec: u128 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {msg:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(usec > 0);
    n.wait(reloading + 1, "READY=1", Duration::from_secs(5));
    let after_reload = n.wait(reloading + 1, "WATCHDOG=1", Duration::from_secs(3));

    d.signal(Signal::SIGTERM);
    let stopping = n.wait(after_reload, "STOPPING=1", Duration::from_secs(5));
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "stderr: {}", d.stderr());
    assert!(
        n.all()[stopping..].iter().all(|(_, m)| !has(m, "READY=1")),
        "nothing announces readiness after STOPPING=1: {:#?}",
        n.texts()
    );
}

#[test]
fn no_notify_socket_no_notifications_and_no_harm() {
    // Without NOTIFY_SOCKET the daemon runs as usual (the variable is scrubbed by the kit).
    let mut d = Daemon::start(Path::new(BIN), DaemonOptions::new("").env("WATCHDOG_USEC", "500000"));
    assert_eq!(d.get("/readyz", &[]).status, 200);
    d.stop();
}

#[cfg(feature = "failpoints")]
#[test]
fn a_wedged_file_tier_stops_the_watchdog_pings() {
    let n = Notifications::listen();
    // Every read of the file tier blocks its thread for 4 s.
    let d = Daemon::start(Path::new(BIN), options(&n).env("FAILPOINTS", "file::read=sleep(4000)"));
    let mut at = n.wait(0, "READY=1", Duration::from_secs(5));
    for _ in 0..3 {
        at = n.wait(at + 1, "WATCHDOG=1", Duration::from_secs(3));
    }

    // A read that misses memory goes to the file tier, which then hangs for 4 s.
    let url = d.url("/v1/caches/strava");
    let reader = std::thread::spawn(move || {
        let _ = ureq::get(&url).timeout(Duration::from_secs(30)).call();
    });

    // The health loop notices, withholds the pings, and resumes them once it answers.
    let unhealthy = n.wait(at + 1, "STATUS=unhealthy*", Duration::from_secs(3));
    n.wait(unhealthy + 1, "STATUS=ready*", Duration::from_secs(10));
    let _ = reader.join();
    let all = n.all();
    let last_before = all[..unhealthy].iter().rev().find(|(_, m)| has(m, "WATCHDOG=1")).map(|(t, _)| *t);
    let first_after = all[unhealthy..].iter().find(|(_, m)| has(m, "WATCHDOG=1")).map(|(t, _)| *t);
    let (Some(before), Some(after)) = (last_before, first_after) else {
        panic!("pings before and after the wedge expected: {:#?}", n.texts())
    };
    assert!(
        after - before >= Duration::from_millis(2500),
        "the pings must pause while the file tier is wedged; the gap was only {:?}: {:#?}",
        after - before,
        n.texts()
    );
    assert!(d.stdout().contains("watchdog pings withheld"), "the withheld pings are logged:\n{}", d.stdout());
}
