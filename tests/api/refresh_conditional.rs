//! Conditional requests for `http` and `justgiving` sources: the last answer's `ETag`
//! and `Last-Modified` go back as `If-None-Match`/`If-Modified-Since`, kept across
//! restarts; a 304 moves `last_fetch` and leaves the version as it was, a changed
//! answer saves a new version.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{http_cache, wait_for};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiercache_testkit::Daemon;

/// The upstream's current (etag, body); answers 304 when `If-None-Match` matches.
type Current = Arc<Mutex<(String, String)>>;

fn conditional_upstream(path: &str) -> (FakeUpstream, Current) {
    let up = FakeUpstream::start();
    let current: Current = Arc::new(Mutex::new(("\"v1\"".into(), r#"{"total": "10.00"}"#.into())));
    let served = current.clone();
    up.route_fn("GET", path, move |req, _| {
        let (etag, body) = served.lock().unwrap().clone();
        if req.header("if-none-match") == Some(etag.as_str()) {
            return Reply::json(304, "").header("ETag", &etag);
        }
        Reply::json(200, body).header("ETag", &etag).header("Last-Modified", "Wed, 01 May 2024 10:00:00 GMT")
    });
    (up, current)
}

fn meta(app: &Daemon, name: &str) -> Value {
    app.get(&format!("/v1/caches/{name}/meta"), &[]).json()
}

/// POSTs a refresh and waits until meta's `last_fetch` and `last_refresh` both move past
/// `before`'s: the document and the refresher's record of the fetch are published one
/// after the other.
fn refresh_and_wait(app: &Daemon, name: &str, before: &Value) -> Value {
    let r = app.request("POST", &format!("/v1/caches/{name}/refresh"), None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    wait_for("last_fetch and last_refresh to move", Duration::from_secs(5), || {
        let m = meta(app, name);
        (m["last_fetch"] != before["last_fetch"] && m["last_refresh"]["at"] != before["last_refresh"]["at"])
            .then_some(m)
    })
}

fn check_conditional(up: &FakeUpstream, current: &Current, mut app: Daemon, name: &str, path: &str) {
    let first = wait_for("the first fetch", Duration::from_secs(5), || {
        let m = meta(&app, name);
        m["version"].as_u64().map(|_| m)
    });
    assert_eq!(up.requests_to("GET", path)[0].header("if-none-match"), None, "nothing to be conditional on yet");

    // Unchanged: a 304, last_fetch moves, the version stays.
    std::thread::sleep(Duration::from_millis(1100));
    let after = refresh_and_wait(&app, name, &first);
    assert_eq!(after["version"], first["version"], "{after}");
    assert_eq!(after["checksum"], first["checksum"]);
    assert_eq!(after["last_refresh"]["result"], "not_modified", "{after}");
    assert_eq!(after["last_refresh"]["reason"], "manual", "{after}");
    let sent = up.requests_to("GET", path).pop().unwrap();
    assert_eq!(sent.header("if-none-match"), Some("\"v1\""), "{sent:?}");
    assert_eq!(sent.header("if-modified-since"), Some("Wed, 01 May 2024 10:00:00 GMT"));
    let r = app.get_cache(name);
    assert_eq!((r.status, r.json()["total"].as_str()), (200, Some("10.00")), "{r:?}");

    // Across a restart the validators are kept: still a 304.
    app.restart();
    std::thread::sleep(Duration::from_millis(1100));
    let restarted = refresh_and_wait(&app, name, &after);
    assert_eq!(restarted["version"], first["version"], "{restarted}");
    assert_eq!(up.requests_to("GET", path).pop().unwrap().header("if-none-match"), Some("\"v1\""));

    // Changed upstream: a new version with the new data.
    *current.lock().unwrap() = ("\"v2\"".into(), r#"{"total": "12.50"}"#.into());
    let changed = refresh_and_wait(&app, name, &restarted);
    assert!(changed["version"].as_u64() > first["version"].as_u64(), "{changed}");
    assert_eq!(changed["last_refresh"]["result"], "saved", "{changed}");
    assert_eq!(app.get_cache(name).json()["total"], "12.50");
}

#[test]
fn an_unchanged_http_source_answering_304_moves_last_fetch_and_keeps_the_version() {
    let (up, current) = conditional_upstream("/data");
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/data"), Some("1h"))));
    check_conditional(&up, &current, app, "feed", "/data");
}

#[test]
fn a_justgiving_source_is_conditional_too() {
    let path = "/app-1/v1/fundraising/pages/my-page";
    let (up, current) = conditional_upstream(path);
    let tables = format!(
        "[[caches]]\nname = \"fundraising\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"justgiving\"\n\
         app_id = \"app-1\"\npage_short_name = \"my-page\"\nbase_url = \"{}\"\n",
        up.base_url()
    );
    let app = spawn_app_with(Options::new().tables(&tables));
    check_conditional(&up, &current, app, "fundraising", path);
}
