//! `tiercache strava subscribe | list | unsubscribe` against a fake Strava whose
//! `POST /api/v3/push_subscriptions` runs the real handshake against the daemon, as
//! Strava does before it answers.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{metric_value, wait_for};
use crate::webhook_support::{event, fake_strava, post_event, tables, ATHLETE, VERIFY};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiercache_testkit::Daemon;

const SUBSCRIPTION: u64 = 120475;

/// Push subscriptions as Strava keeps them: at most one, created after the handshake.
fn subscriptions(up: &FakeUpstream) -> Arc<Mutex<Option<String>>> {
    let current: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let held = current.clone();
    up.route_fn("POST", "/api/v3/push_subscriptions", move |req, _| {
        if held.lock().unwrap().is_some() {
            return Reply::json(400, json!({"message": "Bad Request", "errors": [{"resource": "PushSubscription", "field": "", "code": "already exists"}]}).to_string());
        }
        let (callback, token) = (req.form("callback_url").unwrap_or_default(), req.form("verify_token").unwrap_or_default());
        let answer = ureq::get(&callback)
            .query("hub.mode", "subscribe")
            .query("hub.verify_token", &token)
            .query("hub.challenge", "c4a11e7")
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok());
        if answer != Some(json!({"hub.challenge": "c4a11e7"})) {
            return Reply::json(400, json!({"message": "Bad Request", "errors": [{"resource": "PushSubscription", "field": "callback url", "code": "not verifiable"}]}).to_string());
        }
        *held.lock().unwrap() = Some(callback);
        Reply::json(201, json!({"id": SUBSCRIPTION}).to_string())
    });
    let listed = current.clone();
    up.route_fn("GET", "/api/v3/push_subscriptions", move |_, _| {
        let subs: Vec<_> =
            listed.lock().unwrap().iter().map(|cb| json!({"id": SUBSCRIPTION, "callback_url": cb})).collect();
        Reply::ok(&json!(subs))
    });
    let deleted = current.clone();
    up.route_fn("DELETE", "/api/v3/push_subscriptions/", move |_, _| {
        *deleted.lock().unwrap() = None;
        Reply::json(204, "")
    });
    current
}

fn cli(app: &Daemon, args: &[&str]) -> tiercache_testkit::cli::Output {
    let config = app.config_path().display().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    app.run(&all, &[])
}

#[test]
fn subscribe_list_and_unsubscribe_record_the_id_the_receiver_checks() {
    let (up, _) = fake_strava(3);
    let current = subscriptions(&up);
    let app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    let callback = app.url("/v1/webhooks/strava");

    let out = cli(&app, &["strava", "subscribe", "--callback-url", &callback]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("subscribed: id {SUBSCRIPTION}, callback URL {callback}")), "{out:?}");
    let record = app.data_dir().join("webhooks/strava.json");
    assert!(out.stdout.contains("webhooks/strava.json"), "{out:?}");
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(recorded["id"], SUBSCRIPTION);
    let sent = up.requests_to("POST", "/api/v3/push_subscriptions").remove(0);
    assert_eq!(sent.form("client_id").as_deref(), Some("12345"));
    assert_eq!(sent.form("client_secret").as_deref(), Some("client-secret-s3cret"));
    assert_eq!(sent.form("verify_token").as_deref(), Some(VERIFY));
    assert!(!out.stdout.contains(VERIFY) && !out.stderr.contains("client-secret-s3cret"));

    // The receiver now drops events of any other subscription, answering them alike.
    let ours = event("activity", 1, "create", ATHLETE, json!({}));
    let theirs = post_event(&app, &ours.replace("120475", "99"));
    assert_eq!((theirs.status, theirs.body.clone()), (200, post_event(&app, &ours).body));
    let dropped = wait_for("the other subscription's event counted", Duration::from_secs(15), || {
        let theirs = post_event(&app, &ours.replace("120475", "99"));
        assert_eq!(theirs.status, 200);
        let metrics = app.metrics();
        metric_value(&metrics, "tiercache_webhook_events_total", &[("outcome", "other_subscription")])
    });
    assert!(dropped >= 1.0);

    let again = cli(&app, &["strava", "subscribe", "--callback-url", &callback]);
    assert_eq!(again.code, 69, "{again:?}");
    assert!(again.stderr.contains("already subscribed"), "{again:?}");

    let list = cli(&app, &["strava", "list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains(&format!("id {SUBSCRIPTION}, callback URL {callback} (recorded here)")), "{list:?}");

    let out = cli(&app, &["strava", "unsubscribe"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("unsubscribed: id {SUBSCRIPTION}")), "{out:?}");
    assert!(!record.exists());
    assert!(current.lock().unwrap().is_none());
    assert_eq!(
        up.requests_to("DELETE", "/api/v3/push_subscriptions/")[0].route(),
        format!("/api/v3/push_subscriptions/{SUBSCRIPTION}")
    );
}

#[test]
fn an_unreachable_callback_and_a_missing_source_are_clear_errors() {
    let (up, _) = fake_strava(3);
    subscriptions(&up);
    let app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    let out = cli(&app, &["strava", "subscribe", "--callback-url", "http://127.0.0.1:9/v1/webhooks/strava"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("not verifiable") && out.stderr.contains("must reach"), "{out:?}");
    assert!(!app.data_dir().join("webhooks/strava.json").exists());

    let plain = spawn_app_with(Options::new());
    let out = cli(&plain, &["strava", "list"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stderr.contains("no strava source"), "{out:?}");
}
