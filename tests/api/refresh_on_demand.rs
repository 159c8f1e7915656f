//! Refreshes nobody scheduled (a read's emergency refresh, `POST .../refresh`, SIGUSR1,
//! `EMERGENCY_REFRESH`): the emergency refresh of an empty cache is single-flight, a
//! POST or SIGUSR1 starts a refresh now, and with the emergency refresh off an empty
//! cache answers 503 with `Retry-After` and never calls upstream.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{http_cache, metric_value, retry_after, wait_for_body, wait_refreshed};
use nix::sys::signal::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

#[test]
fn fifty_concurrent_reads_of_an_empty_cache_make_one_upstream_call() {
    let up = FakeUpstream::start();
    up.route_fn("GET", "/feed", |_, n| {
        Reply::ok(&json!({"call": n, "items": [1, 2, 3]})).delay(Duration::from_millis(500))
    });
    up.route("GET", "/beacon", Reply::ok(&json!({})));
    // No schedule: only a reader can cause a fetch. "beacon", never fetched, is refreshed
    // when the schedules begin: once it was, the startup's refreshes have happened.
    let tables = format!(
        "{}{}",
        http_cache("feed", &up.url("/feed"), None),
        http_cache("beacon", &up.url("/beacon"), Some("1h"))
    );
    let app = spawn_app_with(Options::new().tables(&tables));
    wait_refreshed(&app, "beacon", 1, Duration::from_secs(3));
    assert_eq!(up.count("GET", "/feed"), 0, "a call before anyone read: {:?}", up.summary());

    let barrier = Barrier::new(50);
    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    app.get_cache("feed")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("reader thread")).collect()
    });

    let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
    for r in &answers {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json(), json!({"call": 0, "items": [1, 2, 3]}), "{r:?}");
        *tiers.entry(r.header("x-cache-tier").unwrap_or("none").to_owned()).or_default() += 1;
    }
    assert!(tiers.keys().all(|t| t == "refresh" || t == "memory"), "tiers {tiers:?}");
    assert!(tiers.get("refresh").is_some_and(|n| *n >= 1), "nobody waited for the refresh: {tiers:?}");
    // Late answers cannot cause a second call either: once the refresh is recorded,
    // it was the only one.
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    assert_eq!(up.count("GET", "/feed"), 1, "upstream calls: {:?} (tiers {tiers:?})", up.summary());
    let metrics = app.metrics();
    let ok = metric_value(&metrics, "tiercache_refreshes_total", &[("cache", "feed"), ("result", "ok")]);
    assert_eq!(ok, Some(1.0), "{metrics}");
}

#[test]
fn with_the_emergency_refresh_off_an_empty_cache_answers_503_without_calling_upstream() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::ok(&json!({"ok": true})));
    let app = spawn_app_with(Options::new().env("EMERGENCY_REFRESH", "false").tables(&http_cache(
        "feed",
        &up.url("/feed"),
        None,
    )));
    for _ in 0..3 {
        let r = app.get_cache("feed");
        assert_eq!(r.status, 503, "{r:?}");
        r.assert_json_error();
        assert!(retry_after(&r) >= 1, "{r:?}");
    }
    assert_eq!(up.count("GET", "/feed"), 0, "called upstream: {:?}", up.summary());

    // The source itself works: an explicit refresh fills the cache, and its call is the
    // first and only one (none was left behind by the reads).
    let posted = Instant::now();
    let r = app.request("POST", "/v1/caches/feed/refresh", None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    wait_for_body(&app, "feed", &json!({"ok": true}), Duration::from_secs(3));
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    assert_eq!(up.count("GET", "/feed"), 1, "{:?}", up.summary());
    assert!(up.requests()[0].at >= posted, "a read called upstream: {:?}", up.summary());
}

#[test]
fn post_refresh_answers_202_and_calls_upstream() {
    let up = FakeUpstream::start();
    up.route_fn("GET", "/feed", |_, n| Reply::ok(&json!({"n": n})));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("1h"))));
    // Never fetched: refreshed at startup; then not for an hour.
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    wait_for_body(&app, "feed", &json!({"n": 0}), Duration::from_secs(2));

    let before = up.count("GET", "/feed");
    let posted = Instant::now();
    let r = app.request("POST", "/v1/caches/feed/refresh", None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    let call = up.wait_for("GET", "/feed", before + 1, Duration::from_secs(2))[before].at;
    assert!(call - posted < Duration::from_secs(1), "called {:?} after the POST", call - posted);
    let r = wait_for_body(&app, "feed", &json!({"n": 1}), Duration::from_secs(2));
    assert_eq!(r.header("x-cache-tier"), Some("memory"), "{r:?}");
    // The POST's refresh is recorded: it made the one call.
    wait_refreshed(&app, "feed", 2, Duration::from_secs(2));
    assert_eq!(up.count("GET", "/feed"), before + 1, "one POST, one call: {:?}", up.summary());

    // A cache filled by PUT has nothing to refresh from.
    let mut plain = Options::new().tables(&http_cache("feed", &up.url("/feed"), None));
    plain = plain.caches(&["notes"]);
    let app2 = spawn_app_with(plain);
    let r = app2.request("POST", "/v1/caches/notes/refresh", None, &[]);
    assert_eq!(r.status, 409, "{r:?}");
    r.assert_json_error();
}

#[test]
fn sigusr1_refreshes_every_cache() {
    let up = FakeUpstream::start();
    up.route_fn("GET", "/a", |_, n| Reply::ok(&json!({"a": n})));
    up.route_fn("GET", "/b", |_, n| Reply::ok(&json!({"b": n})));
    let tables =
        format!("{}{}", http_cache("alpha", &up.url("/a"), Some("1h")), http_cache("beta", &up.url("/b"), None));
    let app = spawn_app_with(Options::new().tables(&tables).caches(&["notes"]));
    // alpha is refreshed at startup (never fetched); beta has no schedule.
    up.wait_for("GET", "/a", 1, Duration::from_secs(3));
    wait_refreshed(&app, "alpha", 1, Duration::from_secs(3));
    assert_eq!(up.count("GET", "/b"), 0, "{:?}", up.summary());

    app.signal(Signal::SIGUSR1);
    up.wait_for("GET", "/a", 2, Duration::from_secs(2));
    up.wait_for("GET", "/b", 1, Duration::from_secs(2));
    wait_for_body(&app, "alpha", &json!({"a": 1}), Duration::from_secs(2));
    wait_for_body(&app, "beta", &json!({"b": 0}), Duration::from_secs(2));
    // Both refreshes are recorded: each made one call.
    wait_refreshed(&app, "alpha", 2, Duration::from_secs(2));
    wait_refreshed(&app, "beta", 1, Duration::from_secs(2));
    assert_eq!((up.count("GET", "/a"), up.count("GET", "/b")), (2, 1), "{:?}", up.summary());
    assert_eq!(app.get("/healthz", &[]).status, 200, "the daemon survives SIGUSR1");
}

#[test]
fn posts_and_sigusr1_during_a_fetch_join_it() {
    let up = FakeUpstream::start();
    up.route_fn("GET", "/feed", |_, n| Reply::ok(&json!({"n": n})).delay(Duration::from_millis(800)));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), None)));
    for _ in 0..5 {
        let r = app.request("POST", "/v1/caches/feed/refresh", None, &[]);
        assert_eq!(r.status, 202, "{r:?}");
    }
    app.signal(Signal::SIGUSR1);
    // A reader of the still empty cache waits for the same fetch.
    let r = app.get_cache("feed");
    assert_eq!((r.status, r.json()), (200, json!({"n": 0})), "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("refresh"), "{r:?}");
    wait_refreshed(&app, "feed", 1, Duration::from_secs(2));
    assert_eq!(up.count("GET", "/feed"), 1, "one fetch in flight at a time: {:?}", up.summary());
    // The joined requests left nothing queued: the refresher is idle, so a SIGUSR1 now
    // starts a fetch (one in flight would make it start none).
    app.signal(Signal::SIGUSR1);
    let idle = app.wait_for_log("a SIGUSR1 that starts a fetch", Duration::from_secs(3), |l| {
        tiercache_testkit::daemon::message(l) == "SIGUSR1: refreshing every cache with a source" && l["started"] == 1
    });
    assert_eq!(idle["started"], 1, "{idle}");
    wait_refreshed(&app, "feed", 2, Duration::from_secs(3));
    assert_eq!(up.count("GET", "/feed"), 2, "{:?}", up.summary());
}
