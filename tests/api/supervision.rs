//! Failpoint panics in the memory and file actors: the actor is restarted, the restart
//! is counted, the daemon keeps answering; past the restart limit the process exits 70.
//! Needs the `failpoints` feature (`cargo test --all-features`).

use crate::helpers::{spawn_app_with, Options};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::EXIT_TIMEOUT;
use tiercache_testkit::Daemon;

fn restarts_line(actor: &str, n: u32) -> String {
    format!(r#"tiercache_actor_restarts_total{{actor="{actor}"}} {n}"#)
}

/// Waits until `/metrics` counts `n` restarts of `actor` (the count is recorded by the
/// supervisor asynchronously).
fn assert_restarts(app: &Daemon, actor: &str, n: u32) {
    let want = restarts_line(actor, n);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = app.metrics();
        if metrics.lines().any(|l| l == want) {
            return;
        }
        assert!(Instant::now() < deadline, "no `{want}` in /metrics:\n{metrics}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn with_failpoints(spec: &str, max_restarts: u32) -> Options {
    Options::new()
        .env("FAILPOINTS", spec)
        .tables(&format!("[supervisor]\nmax_restarts = {max_restarts}\nrestart_window = \"60s\""))
}

#[test]
fn file_write_panic_is_survived() {
    let mut app = spawn_app_with(with_failpoints("file::write=1*panic", 5));
    let r = app.put_json("strava", r#"{"a": 1}"#);
    assert_eq!(r.status, 200, "the save is retried once after the restart: {r:?}");
    assert_restarts(&app, "file", 1);
    let g = app.get_cache("strava");
    assert_eq!(g.status, 200);
    assert_eq!(g.body, r#"{"a":1}"#);
    assert_eq!(g.header("etag"), r.header("etag"));
    // The restarted actor keeps its versions (rebuilt from disk).
    let next = app.put_ok("strava", r#"{"a": 2}"#);
    assert!(next.etag_version().expect("ETag") > r.etag_version().expect("ETag"));
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert!(app.is_running());
    // And the acknowledged saves are on disk.
    app.restart();
    assert_eq!(app.get_cache("strava").body, r#"{"a":2}"#);
}

#[test]
fn memory_get_panic_is_survived() {
    let app = spawn_app_with(with_failpoints("memory::get=1*panic", 5));
    app.put_ok("strava", r#"{"a": 1}"#);
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, r#"{"a":1}"#);
    assert_restarts(&app, "memory", 1);
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("memory"));
    assert_eq!(app.get("/healthz", &[]).status, 200);
}

#[test]
fn file_read_panic_is_survived() {
    let mut app = spawn_app_with(with_failpoints("", 5));
    app.put_ok("strava", r#"{"a": 1}"#);
    app.stop();
    app.set_env("FAILPOINTS", "file::read=1*panic");
    app.start_again();
    let first = app.get_cache("strava");
    if first.status == 200 {
        assert_eq!(first.body, r#"{"a":1}"#);
    } else {
        assert_eq!(first.status, 503, "{first:?}");
        first.assert_json_error();
    }
    let second = app.get_cache("strava");
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.body, r#"{"a":1}"#);
    assert_restarts(&app, "file", 1);
    // The file was not mistaken for a corrupt one.
    assert!(app.files_in("corrupt").is_empty());
}

#[test]
fn restart_limit_exits_70() {
    let mut app = spawn_app_with(with_failpoints("file::write=panic", 2));
    for _ in 0..5 {
        match app.try_request("PUT", "/v1/caches/strava", Some(b"[1]"), &[("Content-Type", "application/json")]) {
            Ok(r) => assert_ne!(r.status, 200, "a save was acknowledged though every write panics: {r:?}"),
            Err(_) => break, // the process is going away
        }
        if !app.is_running() {
            break;
        }
    }
    let code = app.wait_exit(EXIT_TIMEOUT);
    assert_eq!(code, Some(70), "stderr:\n{}\nstdout:\n{}", app.stderr(), app.stdout());
    // The panics' own messages (and backtraces) go to stderr too, from other threads,
    // so the reason is one line among them rather than necessarily the last one.
    let stderr = app.stderr();
    let why = stderr
        .lines()
        .find(|l| l.contains("supervisor") && l.contains("gave up"))
        .unwrap_or_else(|| panic!("no line about the supervisor giving up:\n{stderr}"));
    assert!(why.contains("file"), "names the actor: {why:?}");
}

/// A GET that must be answered, never left hanging: on its own thread, bounded.
fn answered_within(app: &Daemon, path: &str, limit: Duration) -> tiercache_testkit::Response {
    let url = app.url(path);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let _ = tx.send(tiercache_testkit::http::try_request(&agent, "GET", &url, None, &[]));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("GET {path}: {e}"),
        Err(_) => panic!("GET {path} was not answered within {limit:?}"),
    }
}

#[test]
fn a_panic_in_a_cold_reads_load_is_survived_and_the_reader_answered() {
    let mut app = spawn_app_with(with_failpoints("", 5));
    app.put_ok("strava", r#"{"a": 1}"#);
    app.stop();
    app.set_env("FAILPOINTS", "memory::load=1*panic");
    app.start_again();
    // The load panics after the handler returned; the reader is answered (the load is
    // tried again after the restart) instead of waiting for ever.
    let first = answered_within(&app, "/v1/caches/strava", Duration::from_secs(10));
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, r#"{"a":1}"#);
    assert_restarts(&app, "memory", 1);
    let second = answered_within(&app, "/v1/caches/strava", Duration::from_secs(10));
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert!(app.is_running());
}

#[test]
fn a_panic_in_a_fetch_in_flight_restarts_the_refresher_and_answers_the_reader() {
    let app = spawn_app_with(with_failpoints("refresher::fetch_async=1*panic", 5).tables(
        "[[caches]]\nname = \"feed\"\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"echo '{\\\"fed\\\": true}'\"]\n",
    ));
    // An empty cache: the reader waits on an emergency refresh whose fetch panics.
    let first = answered_within(&app, "/v1/caches/feed", Duration::from_secs(10));
    assert!(matches!(first.status, 200 | 503), "{first:?}");
    assert_restarts(&app, "refresher", 1);
    let served = crate::refresh_support::wait_for("the feed to be served", Duration::from_secs(15), || {
        let r = answered_within(&app, "/v1/caches/feed", Duration::from_secs(10));
        (r.status == 200).then_some(r)
    });
    assert_eq!(served.body, r#"{"fed":true}"#);
    assert_eq!(app.get("/healthz", &[]).status, 200);
}

#[test]
fn healthz_answers_503_while_an_actor_does_not_answer() {
    // The file tier's read sleeps 8 s: a reader of a cold cache wedges its thread.
    let app = spawn_app_with(with_failpoints("file::read=sleep(8000)", 5));
    assert_eq!(app.get("/healthz", &[]).status, 200);
    let url = app.url("/v1/caches/strava");
    let reader = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        tiercache_testkit::http::try_request(&agent, "GET", &url, None, &[])
    });
    let unhealthy = crate::refresh_support::wait_for("/healthz to answer 503", Duration::from_secs(7), || {
        let r = app.get("/healthz", &[]);
        (r.status == 503).then_some(r)
    });
    assert_eq!(unhealthy.assert_json_error(), "unhealthy");
    assert!(unhealthy.json()["error"].as_str().unwrap_or("").contains("file tier"), "{unhealthy:?}");
    let _ = reader.join();
    crate::refresh_support::wait_for("/healthz to answer 200 again", Duration::from_secs(10), || {
        (app.get("/healthz", &[]).status == 200).then_some(())
    });
}

#[test]
fn a_panic_in_a_retention_pass_is_counted_and_the_next_pass_runs() {
    let mut app =
        spawn_app_with(with_failpoints("", 5).tables("[[caches]]\nname = \"keep\"\n[[caches]]\nname = \"old\"\n"));
    app.put_ok("old", "[1]");
    app.stop();
    tiercache_testkit::envelope::backdate(&app.cache_file("old"), 40);
    // "old" is no longer configured; the first pass panics, the second purges it.
    app.set_config(with_failpoints("retention::pass=1*panic", 5).tables("[[caches]]\nname = \"keep\"\n").config_text());
    app.set_env("FAILPOINTS", "retention::pass=1*panic");
    app.set_env("TIERCACHE_RETENTION_INTERVAL", "1s");
    app.start_again();
    assert_restarts(&app, "retention", 1);
    let purged = app.wait_for_log("the next pass purging old", Duration::from_secs(10), |l| {
        tiercache_testkit::daemon::message(l) == "retention: purged a cache no longer configured" && l["cache"] == "old"
    });
    assert_eq!(purged["tier"], "file", "{purged}");
    assert!(!app.cache_file("old").exists());
    assert_eq!(app.get("/healthz", &[]).status, 200);
}
