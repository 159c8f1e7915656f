//! The Strava webhook receiver: the subscription handshake, events acknowledged at
//! once and applied after the answer, bursts coalesced, events of other athletes and
//! other subscriptions (the same answer, no call), the route open without API tokens
//! (and only that route), 404 without a verify token.

use crate::fake_upstream::strava_summary;
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{metric_value, wait_for, wait_refreshed};
use crate::security_support::start_with_files;
use crate::webhook_support::{
    event, event_of, fake_strava, post_event, record_subscription, served_ids, start_of, tables, ATHLETE, VERIFY,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// Whether `GET /api/v3/athlete` was asked (exactly once).
fn athlete_asked(up: &crate::fake_upstream::FakeUpstream) -> bool {
    up.requests().iter().filter(|r| r.route() == "/api/v3/athlete").count() == 1
}

#[test]
fn the_handshake_answers_the_challenge_only_with_the_right_token() {
    let (up, _) = fake_strava(3);
    let tokens = "write:writer-token-0123456789\n";
    let app = start_with_files(
        Options::new().api("tokens_file = \"tokens\"").tables(&tables(&up.base_url())),
        &[("tokens", tokens)],
    );
    let path = |token: &str| {
        format!("/v1/webhooks/strava?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=15f7d1a91c1f40f8a748fd134752feb3")
    };
    // No API token needed (Strava cannot send one), while the caches still need one.
    let r = app.get(&path(VERIFY), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({"hub.challenge": "15f7d1a91c1f40f8a748fd134752feb3"}));
    assert_eq!(app.get("/v1/caches/strava", &[]).status, 401);

    for wrong in [
        path("verify-s3cret-tokem"),
        path(""),
        "/v1/webhooks/strava?hub.mode=subscribe&hub.challenge=x".into(),
        format!("/v1/webhooks/strava?hub.mode=unsubscribe&hub.verify_token={VERIFY}&hub.challenge=x"),
    ] {
        let r = app.get(&wrong, &[]);
        assert_eq!(r.status, 403, "{wrong}: {r:?}");
        r.assert_json_error();
    }
    let stdout = app.stdout();
    assert!(!stdout.contains(VERIFY) && !stdout.contains("verify-s3cret-tokem"), "a verify token in the logs");
}

#[test]
fn without_a_verify_token_the_routes_are_404() {
    let app = spawn_app_with(Options::new());
    let r = app.get(&format!("/v1/webhooks/strava?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=x"), &[]);
    assert_eq!(r.status, 404, "{r:?}");
    r.assert_json_error();
    let r = post_event(&app, &event("activity", 1, "create", ATHLETE, json!({})));
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn an_event_is_acknowledged_at_once_while_upstream_is_slow_and_served_soon_after() {
    let (up, athlete) = fake_strava(10);
    let app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete id", Duration::from_secs(5), || athlete_asked(&up).then_some(()));

    {
        let mut a = athlete.lock().unwrap();
        a.activities.insert(0, strava_summary(11, &start_of(11)));
        a.list_delay = Duration::from_secs(5);
    }
    let lists = up.count("GET", "/api/v3/athlete/activities");
    let started = Instant::now();
    let r = post_event(&app, &event("activity", 11, "create", ATHLETE, json!({})));
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(took < Duration::from_secs(2), "the event was answered after {took:?}");

    // A create is believed once Strava lists it: one incremental list call.
    let asked = wait_for("the list call", Duration::from_secs(3), || {
        up.requests_to("GET", "/api/v3/athlete/activities").into_iter().nth(lists)
    });
    assert!(asked.path.contains("after="), "{}", asked.path);
    let answered = asked.at + Duration::from_secs(5);
    wait_for("activity 11 served", Duration::from_secs(8), || served_ids(&app).contains(&11).then_some(()));
    let lag = Instant::now().saturating_duration_since(answered);
    assert!(lag < Duration::from_secs(1), "served {lag:?} after upstream answered");
    assert_eq!(app.get_cache("strava").json()["activities"][0]["name"], "Morning Run 11");
    // The refresher records the fetch just after the document is served.
    let meta = wait_for("the webhook's refresh recorded", Duration::from_secs(3), || {
        let meta = app.get("/v1/caches/strava/meta", &[]).json();
        (meta["last_refresh"]["reason"] == "webhook").then_some(meta)
    });
    assert_eq!(
        (meta["last_refresh"]["reason"].as_str(), meta["last_refresh"]["result"].as_str()),
        (Some("webhook"), Some("saved")),
        "{meta}"
    );
    assert_eq!(up.count("GET", "/api/v3/athlete/activities"), lists + 1, "{:?}", up.summary());
    assert_eq!(up.count("GET", "/api/v3/activities/"), 0, "no detail call for a create: {:?}", up.summary());
}

#[test]
fn a_burst_of_100_events_costs_a_handful_of_calls_and_ends_in_the_right_document() {
    let (up, athlete) = fake_strava(10);
    let app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete id", Duration::from_secs(5), || athlete_asked(&up).then_some(()));
    let before = up.requests().len();

    // 70 creates (11..=80), every seventh sent twice (Strava retries), then deletes of
    // 20 of them and of 5 older ones (one twice), and one event of another athlete:
    // each change upstream right before its event, as Strava would send it.
    type Step = (Option<(u64, bool)>, String);
    let mut steps: Vec<Step> = Vec::new();
    for id in 11..=80u64 {
        steps.push((Some((id, true)), event("activity", id, "create", ATHLETE, json!({}))));
        if id % 7 == 0 {
            steps.push((None, event("activity", id, "create", ATHLETE, json!({}))));
        }
    }
    for id in (61..=80).chain(1..=5) {
        steps.push((Some((id, false)), event("activity", id, "delete", ATHLETE, json!({}))));
    }
    steps.push((None, event("activity", 1, "delete", ATHLETE, json!({}))));
    steps.push((None, event("activity", 999, "create", 42, json!({}))));
    assert!(steps.len() >= 100, "{}", steps.len());
    let pause = Duration::from_millis(1000 / steps.len() as u64);
    for (change, body) in &steps {
        match change {
            Some((id, true)) => athlete.lock().unwrap().activities.insert(0, strava_summary(*id, &start_of(*id))),
            Some((id, false)) => athlete.lock().unwrap().activities.retain(|a| a["id"] != *id),
            None => {}
        }
        assert_eq!(post_event(&app, body).status, 200);
        std::thread::sleep(pause);
    }

    let want: Vec<u64> = (6..=60).rev().collect();
    wait_for("the burst applied", Duration::from_secs(5), || (served_ids(&app) == want).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    let calls: Vec<String> = up.summary()[before..].to_vec();
    assert!(calls.len() <= 8, "{} upstream calls for the burst: {calls:#?}", calls.len());
    assert_eq!(served_ids(&app), want);

    let metrics = app.metrics();
    let queued =
        metric_value(&metrics, "tiercache_webhook_events_total", &[("type", "activity.create"), ("outcome", "queued")]);
    assert_eq!(queued, Some(80.0), "{metrics}");
    let ignored = metric_value(
        &metrics,
        "tiercache_webhook_events_total",
        &[("type", "activity.create"), ("outcome", "ignored")],
    );
    assert_eq!(ignored, Some(1.0), "the other athlete's event: {metrics}");
    let webhook_calls =
        metric_value(&metrics, "tiercache_upstream_calls_total", &[("cache", "strava"), ("reason", "webhook")]);
    assert_eq!(webhook_calls, Some(calls.len() as f64), "{metrics}");
}

#[test]
fn wrong_and_right_subscription_ids_get_identical_answers_and_the_wrong_one_costs_no_call() {
    let (up, athlete) = fake_strava(3);
    let mut app = crate::helpers::new_app(Options::new().tables(&tables(&up.base_url())));
    record_subscription(&app, 7);
    app.start_again();
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete id", Duration::from_secs(5), || athlete_asked(&up).then_some(()));
    athlete.lock().unwrap().activities.insert(0, strava_summary(4, &start_of(4)));
    let calls = up.requests().len();

    // Another subscription: the same answer as the right one, dropped, no call.
    let wrong = post_event(&app, &event_of(8, "activity", 4, "create", ATHLETE, json!({})));
    let right = post_event(&app, &event_of(7, "activity", 4, "create", ATHLETE, json!({})));
    assert_eq!((wrong.status, wrong.body.clone()), (right.status, right.body.clone()), "{wrong:?} {right:?}");
    assert_eq!(wrong.status, 200);
    wait_for("the right event applied", Duration::from_secs(5), || served_ids(&app).contains(&4).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up.requests().len(), calls + 1, "one list call, for the right event: {:?}", up.summary());
    let metrics = app.metrics();
    let dropped = metric_value(
        &metrics,
        "tiercache_webhook_events_total",
        &[("type", "activity.create"), ("outcome", "other_subscription")],
    );
    assert_eq!(dropped, Some(1.0), "{metrics}");

    let r = post_event(&app, "{\"object_type\": 1}");
    assert_eq!((r.status, r.json()["code"].as_str()), (400, Some("bad_event")), "{r:?}");
}
