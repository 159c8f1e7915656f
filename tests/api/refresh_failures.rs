//! Failing upstreams: a failed refresh never overwrites data, the old document is
//! served marked `stale` once past its schedule, retries back off (1 s doubling, with
//! jitter); a 429 waits for the rate-limit window (`Retry-After`, or Strava's quarter
//! hour) and nothing calls upstream before it; a panic at the failpoint
//! `refresher::fetch` restarts the refresher and the schedule goes on.

use crate::fake_upstream::{strava_token, with_strava_limits, FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{
    failed_lines, gaps, http_cache, metric_value, retry_after, strava_cache, wait_for, wait_for_body, wait_refreshed,
};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn upstream_500s_keep_the_old_data_served_as_stale_and_retries_back_off() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::ok(&json!({"v": 1})));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("2s"))));
    up.wait_for("GET", "/feed", 1, Duration::from_secs(3));
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    let good = app.get_cache("feed");
    assert_eq!((good.status, good.json()), (200, json!({"v": 1})), "{good:?}");

    // From now on upstream fails; the schedule's next call (2 s on) is the first failure.
    up.route("GET", "/feed", Reply::json(500, r#"{"message":"Internal Server Error"}"#));
    let calls = up.wait_for("GET", "/feed", 5, Duration::from_secs(20));
    let failing: Vec<Instant> = calls[1..5].iter().map(|r| r.at).collect();
    let spacing = gaps(&failing);
    // 1 s, 2 s, 4 s, each ±50 %: never hammering, and growing.
    assert!(spacing.iter().all(|g| *g >= 0.45), "retries too close: {spacing:?}");
    assert!(spacing[2] > spacing[0] && spacing[2] >= 1.9, "retries do not back off: {spacing:?}");

    // The old document, labelled stale (it is past its 2 s schedule), never the error.
    let r = app.get_cache("feed");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({"v": 1}));
    assert_eq!(r.header("x-cache-tier"), Some("stale"), "{r:?}");
    assert_eq!(r.header("etag"), good.header("etag"), "a failed refresh changed the document");
    let meta = app.get("/v1/caches/feed/meta", &[]).json();
    assert_eq!(meta["stale"], json!(true), "{meta}");

    let failed = failed_lines(&app, "feed");
    assert!(failed.len() >= 3, "{failed:?}");
    assert!(failed.iter().all(|l| l["error"].as_str().is_some_and(|e| e.contains("500"))), "{failed:?}");
    let metrics = app.metrics();
    let errors = metric_value(&metrics, "tiercache_refreshes_total", &[("cache", "feed"), ("result", "error")]);
    assert!(errors.is_some_and(|n| n >= 4.0), "errors {errors:?}:\n{metrics}");

    // Upstream back: an explicit refresh does not wait for the backoff.
    up.route("GET", "/feed", Reply::ok(&json!({"v": 2})));
    assert_eq!(app.request("POST", "/v1/caches/feed/refresh", None, &[]).status, 202);
    let r = wait_for_body(&app, "feed", &json!({"v": 2}), Duration::from_secs(3));
    assert_eq!(r.header("x-cache-tier"), Some("memory"), "{r:?}");
}

#[test]
fn a_fetch_that_times_out_is_abandoned_and_the_old_data_served_as_stale() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::ok(&json!({"v": 1})));
    let tables = format!("[refresh]\nfetch_timeout = \"1s\"\n\n{}", http_cache("feed", &up.url("/feed"), Some("2s")));
    let app = spawn_app_with(Options::new().tables(&tables));
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));

    // Upstream now answers after 3 s, past the 1 s fetch timeout.
    up.route("GET", "/feed", Reply::ok(&json!({"v": 2})).delay(Duration::from_secs(3)));
    let first = up.wait_for("GET", "/feed", 2, Duration::from_secs(4))[1].at;

    // A reader during the hanging fetch is not held up by it.
    let asked = Instant::now();
    let r = app.get_cache("feed");
    assert!(asked.elapsed() < Duration::from_millis(900), "a read waited for the fetch: {:?}", asked.elapsed());
    assert_eq!((r.status, r.json()), (200, json!({"v": 1})), "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("stale"), "{r:?}");

    // Given up after the 1 s timeout, not after the 3 s the upstream takes.
    let line = wait_for("a \"refresh failed\" line", Duration::from_secs(3), || failed_lines(&app, "feed").pop());
    let gave_up = first.elapsed();
    assert!(gave_up < Duration::from_millis(2800), "failure seen only {gave_up:?} after the call");
    let error = line["error"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(error.contains("timed out") || error.contains("timeout"), "{line}");

    // The retry backs off from the failure, and fails the same way.
    let second = up.wait_for("GET", "/feed", 3, Duration::from_secs(5))[2].at;
    let gap = (second - first).as_secs_f64();
    assert!(gap >= 1.4, "retry {gap:.2} s after the timed-out call (1 s timeout + ≥0.5 s backoff)");
    std::thread::sleep(Duration::from_millis(1200));
    let r = app.get_cache("feed");
    assert_eq!((r.status, r.json()), (200, json!({"v": 1})), "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("stale"), "{r:?}");
    assert!(failed_lines(&app, "feed").len() >= 2, "{}", app.stdout());
}

#[test]
fn past_max_stale_the_old_data_is_refused_with_503() {
    let up = FakeUpstream::start();
    up.route_seq("GET", "/feed", vec![Reply::ok(&json!({"v": 1})), Reply::json(503, r#"{"message":"maintenance"}"#)]);
    let tables = format!("[refresh]\nmax_stale = \"3s\"\n\n{}", http_cache("feed", &up.url("/feed"), Some("1s")));
    let app = spawn_app_with(Options::new().tables(&tables));
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    let fetched = Instant::now();

    // Past the 1 s schedule, within max_stale: served, marked stale.
    std::thread::sleep(Duration::from_millis(1500));
    let r = app.get_cache("feed");
    assert_eq!((r.status, r.json()), (200, json!({"v": 1})), "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("stale"), "{r:?}");

    // Past max_stale with every refresh failing: 503 with Retry-After.
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(fetched.elapsed()));
    let r = app.get_cache("feed");
    assert_eq!(r.status, 503, "{r:?}");
    r.assert_json_error();
    assert!(retry_after(&r) >= 1, "{r:?}");
    assert!(up.count("GET", "/feed") >= 2, "no retries: {:?}", up.summary());
}

#[test]
fn an_http_429_with_retry_after_delays_the_next_call_until_then() {
    let up = FakeUpstream::start();
    let limited =
        with_strava_limits(Reply::json(429, r#"{"message":"Rate Limit Exceeded"}"#)).header("Retry-After", "3");
    up.route_seq("GET", "/feed", vec![limited, Reply::ok(&json!({"ok": true}))]);
    // A 1 s schedule would call again at once if nothing held it back.
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("1s"))));
    let first = up.wait_for("GET", "/feed", 1, Duration::from_secs(3))[0].at;

    // Within the window: an empty cache answers 503 with Retry-After, a POST is refused
    // the same way, and neither calls upstream.
    std::thread::sleep(Duration::from_millis(500));
    let r = app.get_cache("feed");
    assert_eq!(r.status, 503, "{r:?}");
    r.assert_json_error();
    assert!((1..=3).contains(&retry_after(&r)), "{r:?}");
    let r = app.request("POST", "/v1/caches/feed/refresh", None, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.assert_json_error(), "rate_limited");
    assert!((1..=3).contains(&retry_after(&r)), "{r:?}");
    while first.elapsed() < Duration::from_millis(2900) {
        assert_eq!(up.count("GET", "/feed"), 1, "a call inside the Retry-After window: {:?}", up.summary());
        std::thread::sleep(Duration::from_millis(20));
    }

    let second = up.wait_for("GET", "/feed", 2, Duration::from_secs(3))[1].at;
    let gap = (second - first).as_secs_f64();
    assert!((2.95..4.5).contains(&gap), "next call {gap:.2} s after the 429 (Retry-After: 3)");
    wait_for_body(&app, "feed", &json!({"ok": true}), Duration::from_secs(2));
    let metrics = app.metrics();
    let limited = metric_value(&metrics, "tiercache_refreshes_total", &[("cache", "feed"), ("result", "rate_limited")]);
    assert_eq!(limited, Some(1.0), "{metrics}");
}

#[test]
fn a_hanging_fetch_does_not_hold_up_a_graceful_shutdown() {
    let up = FakeUpstream::start();
    // The default fetch_timeout is 60 s; upstream hangs for 20.
    up.route("GET", "/feed", Reply::ok(&json!({"late": true})).delay(Duration::from_secs(20)));
    let mut app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("1h"))));
    up.wait_for("GET", "/feed", 1, Duration::from_secs(3));
    let asked = Instant::now();
    app.signal(nix::sys::signal::Signal::SIGTERM);
    let code = app.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "exit after SIGTERM during a fetch; stderr:\n{}", app.stderr());
    assert!(asked.elapsed() < Duration::from_secs(5), "the shutdown waited {:?} for the fetch", asked.elapsed());
}

#[test]
fn reads_of_an_empty_cache_with_a_failing_upstream_do_not_hammer_it() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::json(500, r#"{"message":"Internal Server Error"}"#));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), None)));
    let started = Instant::now();
    for _ in 0..20 {
        let r = app.get_cache("feed");
        assert_eq!(r.status, 503, "{r:?}");
        r.assert_json_error();
        assert!(retry_after(&r) >= 1, "{r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Within about a second: the first call and at most a retry or two after the
    // backoff's 1 s (±50 %), however many readers come.
    let calls = up.count("GET", "/feed");
    assert!(calls <= 3, "{calls} upstream calls for 20 reads in {:?}: {:?}", started.elapsed(), up.summary());
}

/// Seconds until the next :00, :15, :30 or :45 UTC.
fn secs_to_quarter_hour() -> i64 {
    900 - chrono::Utc::now().timestamp().rem_euclid(900)
}

#[test]
fn a_strava_429_waits_for_the_fifteen_minute_window() {
    // Too close to a window's reset, the daemon may rightly call again within the
    // test: start in the next window instead.
    if secs_to_quarter_hour() < 12 {
        std::thread::sleep(Duration::from_secs(secs_to_quarter_hour() as u64 + 1));
    }
    let up = FakeUpstream::start();
    up.route("POST", "/oauth/token", strava_token("access-1", "configured-refresh"));
    // The 15-minute window is spent (200 of 200); the daily one is not.
    up.route(
        "GET",
        "/api/v3/athlete/activities",
        Reply::json(429, r#"{"message":"Rate Limit Exceeded","errors":[{"resource":"Application","field":"rate limit","code":"exceeded"}]}"#)
            .header("X-RateLimit-Limit", "200,2000")
            .header("X-RateLimit-Usage", "200,1500"),
    );
    let app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "1s", None, 200)));
    let first = up.wait_for("GET", "/api/v3/athlete/activities", 1, Duration::from_secs(3))[0].at;
    let line = wait_for("the rate-limit warning", Duration::from_secs(2), || {
        app.log_lines().into_iter().find(|l| tiercache_testkit::daemon::message(l).contains("rate limit"))
    });
    // `retry_at` is logged as chrono shows a UTC time: "2024-05-01 10:15:00 UTC".
    let retry_at = line["retry_at"].as_str().unwrap_or_else(|| panic!("no retry_at: {line}"));
    let until = chrono::NaiveDateTime::parse_from_str(retry_at.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("retry_at {retry_at:?}: {e}"))
        .and_utc();
    assert_eq!(until.timestamp().rem_euclid(900), 0, "not a quarter hour: {line}");
    let to_window = (until - chrono::Utc::now()).num_seconds();
    assert!((0..=900).contains(&to_window), "{line}");

    // An empty cache within the window: 503 with the window's Retry-After.
    let r = app.get_cache("strava");
    assert_eq!(r.status, 503, "{r:?}");
    let wait = retry_after(&r) as i64;
    assert!(
        (wait - secs_to_quarter_hour()).abs() <= 2,
        "Retry-After {wait}, window resets in {}",
        secs_to_quarter_hour()
    );
    let r = app.request("POST", "/v1/caches/strava/refresh", None, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.assert_json_error(), "rate_limited");

    // The 1 s schedule, the reader and the POST: none of them calls Strava.
    while first.elapsed() < Duration::from_secs(5) {
        assert_eq!(up.requests().len(), 2, "a call inside the rate-limit window: {:?}", up.summary());
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = app.metrics();
    let limited =
        metric_value(&metrics, "tiercache_refreshes_total", &[("cache", "strava"), ("result", "rate_limited")]);
    assert_eq!(limited, Some(1.0), "{metrics}");
    // The gauge shows the spent window the 429 reported.
    let left =
        metric_value(&metrics, "tiercache_upstream_rate_limit_remaining", &[("cache", "strava"), ("window", "15m")]);
    assert_eq!(left, Some(0.0), "{metrics}");
}

#[test]
fn a_reload_that_rebuilds_a_strava_source_keeps_its_budget_readings() {
    let up = FakeUpstream::start();
    up.route("POST", "/oauth/token", strava_token("access-1", "configured-refresh"));
    // The last call of the first refresh reports the daily read window spent (it resets
    // at midnight UTC, so no window reset falls inside the test but at that minute).
    let spent = |reply: Reply| {
        reply
            .header("X-RateLimit-Limit", "200,2000")
            .header("X-RateLimit-Usage", "10,100")
            .header("X-ReadRateLimit-Limit", "100,1000")
            .header("X-ReadRateLimit-Usage", "10,1000")
    };
    up.route_fn("GET", "/api/v3/athlete/activities", move |req, _| {
        if req.query("page").as_deref() == Some("1") {
            with_strava_limits(Reply::ok(&json!([{"id": 1, "name": "Run", "start_date": "2025-04-01T07:00:00Z"}])))
        } else {
            spent(Reply::ok(&json!([])))
        }
    });
    let app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "1h", None, 200)));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    let read_daily = |app: &tiercache_testkit::Daemon| {
        metric_value(
            &app.metrics(),
            "tiercache_upstream_rate_limit_remaining",
            &[("cache", "strava"), ("window", "read_daily")],
        )
    };
    assert_eq!(read_daily(&app), Some(0.0));

    // A reload that changes the source (per_page) builds a new one: it still knows.
    std::fs::write(
        app.config_path(),
        std::fs::read_to_string(app.config_path()).unwrap().replace("per_page = 200", "per_page = 100"),
    )
    .unwrap();
    assert!(crate::security_support::reload(&app));
    let calls = up.requests().len();
    let r = app.request("POST", "/v1/caches/strava/refresh", None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    wait_for("the refresh refused by the budget", Duration::from_secs(5), || {
        let metrics = app.metrics();
        metric_value(&metrics, "tiercache_refreshes_total", &[("cache", "strava"), ("result", "rate_limited")])
    });
    assert_eq!(up.requests().len(), calls, "a call with the daily window spent: {:?}", up.summary());
}

#[cfg(feature = "failpoints")]
#[test]
fn a_panic_at_the_fetch_failpoint_restarts_the_refresher_and_the_schedule_goes_on() {
    let up = FakeUpstream::start();
    up.route_fn("GET", "/feed", |_, n| Reply::ok(&json!({"n": n})));
    let app = spawn_app_with(Options::new().env("FAILPOINTS", "refresher::fetch=1*panic").tables(&http_cache(
        "feed",
        &up.url("/feed"),
        Some("2s"),
    )));
    let want = r#"tiercache_actor_restarts_total{actor="refresher"} 1"#;
    wait_for("the refresher's restart in /metrics", Duration::from_secs(5), || {
        app.metrics().lines().any(|l| l == want).then_some(())
    });
    // The schedule goes on: the overdue (never fetched) cache, then every 2 s.
    let calls = up.wait_for("GET", "/feed", 3, Duration::from_secs(12));
    let spacing = gaps(&calls.iter().map(|r| r.at).collect::<Vec<_>>());
    // Never early; late only by what a busy machine can add (the on-time promise is
    // refresh_schedule's test).
    assert!(
        spacing.iter().all(|g| (1.9..5.0).contains(g)),
        "schedule after the restart: {spacing:?}; {:?}",
        up.summary()
    );
    wait_refreshed(&app, "feed", 3, Duration::from_secs(2));
    let r = app.get_cache("feed");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["n"].as_u64().is_some(), "{r:?}");
    assert!(
        app.log_lines()
            .iter()
            .any(|l| l["actor"] == "refresher" && tiercache_testkit::daemon::message(l).contains("panicked")),
        "no panic logged:\n{}",
        app.stdout()
    );
}
