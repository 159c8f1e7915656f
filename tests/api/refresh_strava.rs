//! The Strava source against a fake Strava: the OAuth refresh-token flow, activities
//! paged until an empty page and assembled in order, the rate-limit budget read from
//! the headers, the rotated refresh token used after a restart and after a `kill -9`
//! right after the rotation, and the rich refresh merging detail.

use crate::fake_upstream::{strava_detail, strava_page, strava_summary, strava_token, FakeUpstream, Recorded, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{metric_value, strava_cache, wait_for, wait_refreshed};
use serde_json::{json, Value};
use std::time::Duration;

const ACTIVITIES: &str = "/api/v3/athlete/activities";
const DETAIL: &str = "/api/v3/activities/";

/// Activities 10 (newest) down to 6, served two per page: pages 1-3, then an empty page 4.
fn paged_activities(up: &FakeUpstream) {
    let all: Vec<Value> =
        (6..=10u64).rev().map(|id| strava_summary(id, &format!("2025-04-{id:02}T07:00:00Z"))).collect();
    up.route_fn("GET", ACTIVITIES, move |req, _| {
        let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let per_page: usize = req.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
        let items: Vec<Value> = all.iter().skip((page - 1) * per_page).take(per_page).cloned().collect();
        strava_page(&items)
    });
}

fn ids(doc: &Value) -> Vec<u64> {
    doc["activities"]
        .as_array()
        .unwrap_or_else(|| panic!("no activities: {doc}"))
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

fn bearer(r: &Recorded) -> &str {
    r.header("authorization").unwrap_or("")
}

#[test]
fn token_refresh_then_activities_paged_in_order_until_an_empty_page() {
    let up = FakeUpstream::start();
    up.route("POST", "/oauth/token", strava_token("access-1", "rotated-1"));
    paged_activities(&up);
    let app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "1h", None, 2)));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(5));

    let calls = up.requests();
    let shape: Vec<(String, String)> = calls.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    let want: Vec<(String, String)> = std::iter::once(("POST".into(), "/oauth/token".into()))
        .chain((1..=4).map(|p| ("GET".into(), format!("{ACTIVITIES}?page={p}&per_page=2"))))
        .collect();
    assert_eq!(shape, want, "token first, then pages 1-4 in order");

    let token = &calls[0];
    assert_eq!(token.form("grant_type").as_deref(), Some("refresh_token"), "{}", token.body_text());
    assert_eq!(token.form("client_id").as_deref(), Some("12345"));
    assert_eq!(token.form("client_secret").as_deref(), Some("client-secret-s3cret"));
    assert_eq!(token.form("refresh_token").as_deref(), Some("configured-refresh"));
    assert!(token.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")));
    for get in &calls[1..] {
        assert_eq!(bearer(get), "Bearer access-1", "{get:?}");
    }

    let r = app.get_cache("strava");
    assert_eq!(r.status, 200, "{r:?}");
    let doc = r.json();
    assert_eq!(ids(&doc), [10, 9, 8, 7, 6], "{doc}");
    assert_eq!(doc["activities"][0], strava_summary(10, "2025-04-10T07:00:00Z"), "activities stored as fetched");
    let ts = doc["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {doc}"));
    let ts = chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("timestamp {ts:?}: {e}"));
    assert!((chrono::Utc::now() - ts.to_utc()).num_seconds().abs() < 10, "{doc}");

    // The budget as the headers told it: 200,2000 minus 12,150; reads 100,1000 minus 7,70.
    let metrics = app.metrics();
    for (window, left) in [("15m", 188.0), ("daily", 1850.0), ("read_15m", 93.0), ("read_daily", 930.0)] {
        let got = metric_value(
            &metrics,
            "tiercache_upstream_rate_limit_remaining",
            &[("cache", "strava"), ("window", window)],
        );
        assert_eq!(got, Some(left), "window {window}:\n{metrics}");
    }

    // The access token lasts 6 h: a second (full) refresh makes no token call.
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh?full=true", None, &[]).status, 202);
    up.wait_for("GET", ACTIVITIES, 8, Duration::from_secs(3));
    assert_eq!(up.count("POST", "/oauth/token"), 1, "{:?}", up.summary());
    // The refresh token is a secret: never in the logs.
    let stdout = app.stdout();
    assert!(!stdout.contains("rotated-1") && !stdout.contains("configured-refresh") && !stdout.contains("access-1"));
}

#[test]
fn the_rotated_refresh_token_is_used_after_a_restart_and_after_kill_9() {
    let up = FakeUpstream::start();
    // Each token call rotates: access-N and rotated-N for the N-th call.
    up.route_fn("POST", "/oauth/token", |_, n| {
        strava_token(&format!("access-{}", n + 1), &format!("rotated-{}", n + 1))
    });
    up.route_fn("GET", ACTIVITIES, |req, _| {
        let page = req.query("page").unwrap_or_default();
        strava_page(&if page == "1" { vec![strava_summary(1, "2025-04-01T07:00:00Z")] } else { vec![] })
    });
    let mut app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "1h", None, 200)));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(5));

    // A clean restart; the cache is not due, so a POST asks for the next fetch.
    app.restart();
    // This time the activities answer slowly: the daemon is killed while it uses the
    // access token that came with the second rotation.
    up.route_fn("GET", ACTIVITIES, |_, _| strava_page(&[]).delay(Duration::from_secs(3)));
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("the activities call with the second access token", Duration::from_secs(3), || {
        up.requests_to("GET", ACTIVITIES).iter().any(|r| bearer(r) == "Bearer access-2").then_some(())
    });
    app.kill9();

    up.route_fn("GET", ACTIVITIES, |_, _| strava_page(&[]));
    app.start_again();
    // The old document is still there, from the file.
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ids(&r.json()), [1]);
    // A full re-read: an incremental one cannot see that the activity went.
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh?full=true", None, &[]).status, 202);
    wait_refreshed(&app, "strava", 1, Duration::from_secs(5));

    let sent: Vec<String> =
        up.requests_to("POST", "/oauth/token").iter().map(|r| r.form("refresh_token").unwrap_or_default()).collect();
    assert_eq!(sent, ["configured-refresh", "rotated-1", "rotated-2"], "{:?}", up.summary());
    let last = up.requests_to("GET", ACTIVITIES).pop().unwrap();
    assert_eq!(bearer(&last), "Bearer access-3");
    // The document of the last refresh: no activities left upstream.
    let r = app.get_cache("strava");
    assert_eq!(ids(&r.json()), Vec::<u64>::new(), "{r:?}");
}

#[test]
fn the_rich_refresh_merges_per_activity_detail() {
    let up = FakeUpstream::start();
    up.route("POST", "/oauth/token", strava_token("access-1", "configured-refresh"));
    up.route_fn("GET", ACTIVITIES, |req, _| {
        let items = if req.query("page").as_deref() == Some("1") {
            vec![
                strava_summary(3, "2025-04-03T07:00:00Z"),
                strava_summary(2, "2025-04-02T07:00:00Z"),
                strava_summary(1, "2025-04-01T07:00:00Z"),
            ]
        } else {
            vec![]
        };
        strava_page(&items)
    });
    up.route_fn("GET", DETAIL, |req, _| match req.route().trim_start_matches(DETAIL).parse::<u64>() {
        Ok(id) => with_limits(Reply::ok(&strava_detail(id))),
        Err(_) => Reply::json(404, r#"{"message":"Record Not Found"}"#),
    });
    // The plain refresh is an hour away; the rich one every 2 s.
    let app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "1h", Some("2s"), 200)));
    let first = wait_refreshed(&app, "strava", 1, Duration::from_secs(5)).remove(0);
    assert_eq!(first["rich"], json!(true), "{first}");

    let details = up.requests_to("GET", DETAIL);
    let mut asked: Vec<&str> = details.iter().map(Recorded::route).collect();
    asked.sort_unstable();
    assert_eq!(asked, ["/api/v3/activities/1", "/api/v3/activities/2", "/api/v3/activities/3"], "{:?}", up.summary());
    assert!(details.iter().all(|d| bearer(d) == "Bearer access-1"), "{details:?}");

    let doc = app.get_cache("strava").json();
    assert_eq!(ids(&doc), [3, 2, 1], "list order kept: {doc}");
    for a in doc["activities"].as_array().unwrap() {
        let id = a["id"].as_u64().unwrap();
        // Detail fields merged in, detail winning where both have a field...
        assert_eq!(a["description"], json!(format!("detail of {id}")), "{a}");
        assert_eq!(a["name"], json!(format!("Morning Run {id} (detail)")), "{a}");
        assert_eq!(a["resource_state"], json!(3), "{a}");
        assert_eq!(a["calories"], json!(612.4), "{a}");
        // ...and the summary's own fields kept.
        assert_eq!(a["distance"], json!(10012.3), "{a}");
        assert_eq!(a["kudos_count"], json!(3), "{a}");
    }
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert!(meta["last_rich_fetch"].is_string(), "{meta}");

    // The next rich refresh comes 2 s later, by itself.
    let lines = wait_refreshed(&app, "strava", 2, Duration::from_secs(5));
    assert_eq!(lines[1]["rich"], json!(true), "{lines:?}");
    assert_eq!(up.count("GET", DETAIL), 6, "{:?}", up.summary());
}

fn with_limits(reply: Reply) -> Reply {
    crate::fake_upstream::with_strava_limits(reply)
}
