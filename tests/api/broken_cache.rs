//! One broken cache among healthy ones: the list of caches still answers 200 with every
//! cache (the broken one with its error), `status` shows it and exits 0, and neither
//! the list nor `/meta` ever calls the upstream (only a read of the document does).

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{http_cache, wait_for};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A cache whose source always fails (`false` exits 1), on demand only.
const BROKEN: &str = "[[caches]]\nname = \"broken\"\n[caches.source]\nkind = \"command\"\nargv = [\"false\"]\n";

fn meta_of<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["caches"].as_array().and_then(|c| c.iter().find(|m| m["name"] == name)).unwrap_or_else(|| panic!("{list}"))
}

#[test]
fn a_cache_with_no_data_and_a_failing_source_does_not_break_the_list_or_status() {
    let app = spawn_app_with(Options::new().caches(&["healthy"]).tables(BROKEN));
    app.put_ok("healthy", r#"{"ok": true}"#);
    // A reader triggers the emergency refresh, which fails.
    let r = app.get_cache("broken");
    assert_eq!(r.status, 503, "{r:?}");

    let list = app.get("/v1/caches", &[]);
    assert_eq!(list.status, 200, "{list:?}");
    let list = list.json();
    assert_eq!(meta_of(&list, "healthy")["tier"], "memory");
    assert_eq!(meta_of(&list, "healthy")["error"], Value::Null);
    let broken = meta_of(&list, "broken");
    assert_eq!(broken["version"], Value::Null, "{broken}");
    let error = broken["error"].as_str().unwrap_or_else(|| panic!("no error for the broken cache: {broken}"));
    assert!(error.contains("exit"), "says why: {error}");
    let refresh_error = broken["last_refresh_error"].as_str().unwrap_or_else(|| panic!("{broken}"));
    assert_eq!(error, format!("the last refresh failed: {refresh_error}"), "{broken}");
    assert!(broken["last_refresh_error_at"].is_string(), "{broken}");
    // The next refresh shown is the retry after the failure, soon, not a schedule.
    let next = chrono::DateTime::parse_from_rfc3339(broken["next_refresh_at"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("next_refresh_at of a failing cache: {e}: {broken}"));
    assert!(next.to_utc() < chrono::Utc::now() + chrono::Duration::minutes(6), "{broken}");

    let meta = app.get("/v1/caches/broken/meta", &[]);
    assert_eq!(meta.status, 200, "{meta:?}");
    assert_eq!(meta.json()["error"].as_str(), Some(error));

    let config = app.config_path();
    let out = app.run(&["status", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with("broken: ")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("not served") && line.contains("exit"), "{line}");
    assert!(out.stdout.lines().any(|l| l.starts_with("healthy ") && l.contains("memory")), "{}", out.stdout);
}

#[test]
fn meta_and_the_list_never_call_the_upstream() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::ok(&json!({"n": 1})));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), None)));
    for _ in 0..3 {
        let meta = app.get("/v1/caches/feed/meta", &[]);
        assert_eq!(meta.status, 200, "{meta:?}");
        let meta = meta.json();
        assert_eq!(meta["version"], Value::Null, "no data yet: {meta}");
        assert_eq!(meta["tier"], Value::Null, "{meta}");
        assert_eq!(app.get("/v1/caches", &[]).status, 200);
    }
    assert_eq!(up.count("GET", "/feed"), 0, "meta or the list called the upstream: {:?}", up.requests());
    // A read does (the emergency refresh), and meta shows its result afterwards. Its
    // call is the first and only one: none was left in flight by meta or the list.
    let read = Instant::now();
    assert_eq!(app.get_cache("feed").status, 200);
    assert_eq!(up.count("GET", "/feed"), 1);
    assert!(up.requests()[0].at >= read, "meta or the list called the upstream: {:?}", up.requests());
    let meta = app.get("/v1/caches/feed/meta", &[]).json();
    assert_eq!(meta["version"], 1, "{meta}");
    assert_eq!(meta["error"], Value::Null, "{meta}");
}

#[test]
fn max_stale_applies_to_caches_with_a_source_only() {
    // A PUT-only cache with a 1 s schedule and max_stale of 1 s: its writer decides how
    // fresh it is, so it is served (marked stale), never refused.
    let app = spawn_app_with(
        Options::new().tables("[refresh]\nmax_stale = \"1s\"\n[[caches]]\nname = \"manual\"\nrefresh_every = \"1s\"\n"),
    );
    app.put_ok("manual", r#"{"v": 1}"#);
    let r = wait_for("the document to pass its schedule", Duration::from_secs(10), || {
        let r = app.get_cache("manual");
        (r.header("x-cache-tier") == Some("stale")).then_some(r)
    });
    std::thread::sleep(Duration::from_millis(1200));
    let again = app.get_cache("manual");
    assert_eq!(again.status, 200, "a PUT-only cache past max_stale is still served: {again:?}");
    assert_eq!(again.body, r.body);
}
