//! `status` and meta say what stands between a cache and its data, and when the next
//! refresh really is: a corrupt file moved aside is named (not just "no data"), and a
//! PUT after a failed refresh moves `next_refresh_at` to the refresher's new schedule
//! and retires the old failure.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app, spawn_app_with, Options};
use crate::refresh_support::{http_cache, wait_for};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tiercache_testkit::Daemon;

/// `tiercache status` against `app`: its stdout (exit 0 asserted).
fn status_text(app: &Daemon) -> String {
    let config = app.config_path();
    let out = app.run(&["status", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    out.stdout
}

fn time(meta: &Value, key: &str) -> DateTime<Utc> {
    let text = meta[key].as_str().unwrap_or_else(|| panic!("meta.{key} is not a time: {meta}"));
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("meta.{key} {text:?}: {e}")).to_utc()
}

#[test]
fn a_corrupt_file_moved_aside_is_named_by_meta_and_status() {
    let mut app = spawn_app();
    app.put_ok("strava", r#"{"n": 1}"#);
    app.stop();
    std::fs::write(app.cache_file("strava"), b"{ not json").unwrap();
    app.start_again();

    // Meta alone (no GET of the document) finds the file corrupt and says so.
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert_eq!(meta["version"], Value::Null, "never served: {meta}");
    let error = meta["error"].as_str().unwrap_or_else(|| panic!("meta says nothing of the corrupt file: {meta}"));
    assert!(error.contains("corrupt") && error.contains("data_dir/corrupt/"), "{error}");
    assert!(error.contains("next save"), "says what brings it back: {error}");
    assert_eq!(app.files_in("corrupt").len(), 1, "moved aside");

    let text = status_text(&app);
    let line = text.lines().find(|l| l.starts_with("strava: ")).unwrap_or_else(|| panic!("no strava line:\n{text}"));
    assert!(line.contains("not served") && line.contains("corrupt"), "{line}");

    // The next save clears it.
    app.put_ok("strava", r#"{"n": 2}"#);
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert_eq!(meta["error"], Value::Null, "{meta}");
    assert!(!status_text(&app).contains("corrupt"));
}

#[test]
fn a_put_after_a_failed_refresh_shows_the_new_schedule_not_the_old_failure() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::json(500, r#"{"message":"upstream is down"}"#));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("1h"))));
    // The start-up refresh (the cache is overdue) fails; an operator's refresh fails too.
    up.wait_for("GET", "/feed", 1, Duration::from_secs(10));
    assert_eq!(app.request("POST", "/v1/caches/feed/refresh", None, &[]).status, 202);
    up.wait_for("GET", "/feed", 2, Duration::from_secs(10));
    // Once a retry is more than a second away, no fetch is in flight or about to start
    // (one ending after the PUT would be a newer failure, rightly shown).
    let failing = wait_for("meta to show the failed refresh and a retry ahead", Duration::from_secs(20), || {
        let m = app.get("/v1/caches/feed/meta", &[]).json();
        let failed = m["last_refresh_error"].as_str().is_some_and(|e| e.contains("500"));
        let ahead = m["next_refresh_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.to_utc() > Utc::now() + chrono::Duration::milliseconds(1500));
        (failed && ahead).then_some(m)
    });
    assert!(failing["error"].as_str().is_some_and(|e| e.contains("500")), "no data: the failure is why: {failing}");

    // The document arrives by PUT: its last_fetch is now, so the next refresh is an hour on.
    app.put_ok("feed", r#"{"manual": true}"#);
    let meta = app.get("/v1/caches/feed/meta", &[]).json();
    let (last_fetch, next) = (time(&meta, "last_fetch"), time(&meta, "next_refresh_at"));
    assert_eq!(next - last_fetch, chrono::Duration::hours(1), "{meta}");
    assert_eq!(meta["last_refresh_error"], Value::Null, "the failure is older than the data: {meta}");
    assert_eq!(meta["last_refresh_error_at"], Value::Null, "{meta}");
    assert_eq!(meta["error"], Value::Null, "{meta}");

    let text = status_text(&app);
    let row = text.lines().find(|l| l.starts_with("feed ")).unwrap_or_else(|| panic!("no feed row:\n{text}"));
    assert!(row.contains(" in 59m") || row.contains(" in 1h00m"), "not overdue: {row}\n{text}");
    assert!(!text.contains("overdue") && !text.contains("last refresh failed"), "{text}");

    // The refresher took the save in: its retry of the old failure is cancelled, so the
    // upstream is not called when that retry would have been due.
    let calls = up.count("GET", "/feed");
    let retry = time(&failing, "next_refresh_at");
    let wait = (retry - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    std::thread::sleep(wait);
    assert_eq!(up.count("GET", "/feed"), calls, "the old failure was retried after the PUT: {:?}", up.requests());
}

#[test]
fn with_jitter_next_refresh_at_is_the_refreshers_own_due_time() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::json(200, r#"{"v": 1}"#));
    let options = Options::new()
        .tables(&format!("[refresh]\njitter = \"30m\"\n{}", http_cache("feed", &up.url("/feed"), Some("1h"))));
    let app = spawn_app_with(options);
    up.wait_for("GET", "/feed", 1, Duration::from_secs(10));
    // The refresher plans last_fetch + 1 h + this cache's fixed share of the 30 min
    // jitter (about 14 min for "feed"); meta shows that plan once the refresher has it,
    // not the bare schedule counted from the document.
    let after = |m: &Value| time(m, "next_refresh_at") - time(m, "last_fetch");
    let meta = wait_for("meta to show the refresher's plan", Duration::from_secs(10), || {
        let m = app.get("/v1/caches/feed/meta", &[]).json();
        (m["version"] == 1 && after(&m) > chrono::Duration::hours(1)).then_some(m)
    });
    assert!(after(&meta) <= chrono::Duration::minutes(90), "{meta}");
}
