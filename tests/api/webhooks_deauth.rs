//! A Strava deauthorization is acted on only once Strava confirms it. A forged one
//! (the athlete's id is printed in every served document) changes nothing: the cache is
//! served, the token file stays, refreshes work and a restart is clean. A real one
//! (Strava refuses the athlete's tokens) purges the cache as `DELETE` does, forgets
//! the stored refresh tokens (never the operator's `refresh_token_file`) and stops its
//! refreshes; neither a `kill -9` nor a restart brings any of it back, every other
//! cache starts as usual, and meta, `status` and `POST .../refresh` say what happened
//! and what to do. A refresh token refused during an ordinary refresh is the same
//! confirmation; a refused client credential is not (and keeps Strava's words).

use crate::fake_upstream::FakeUpstream;
use crate::helpers::{new_app, Options};
use crate::refresh_support::{metric_value, wait_for, wait_refreshed};
use crate::security_support::reload;
use crate::webhook_support::{
    event, event_of, fake_strava, post_event, record_subscription, tables_with_token_file, Athlete, ATHLETE,
    SUBSCRIPTION,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiercache_testkit::Daemon;

/// The operator's refresh token file, in the daemon's directory.
const TOKEN_FILE: &str = "strava-refresh-token";

fn no_data(app: &Daemon) -> bool {
    let r = app.get_cache("strava");
    r.status == 503 && r.json()["code"] == "no_data"
}

/// A daemon with the `strava` cache (its token in [`TOKEN_FILE`]) and a PUT-only
/// `notes` cache, refreshed once, its athlete known; `subscription`: recorded first.
fn start(subscription: Option<u64>) -> (Daemon, FakeUpstream, Arc<Mutex<Athlete>>) {
    let (up, athlete) = fake_strava(5);
    let tables = format!("{}\n[[caches]]\nname = \"notes\"\n", tables_with_token_file(&up.base_url(), TOKEN_FILE));
    let mut app = new_app(Options::new().tables(&tables));
    std::fs::write(app.dir().join(TOKEN_FILE), "configured-refresh\n").unwrap();
    if let Some(id) = subscription {
        record_subscription(&app, id);
    }
    app.start_again();
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete id", Duration::from_secs(5), || {
        up.requests().iter().any(|r| r.route() == "/api/v3/athlete").then_some(())
    });
    app.put_ok("notes", r#"{"kept": true}"#);
    (app, up, athlete)
}

fn events(app: &Daemon, outcome: &str) -> Option<f64> {
    metric_value(&app.metrics(), "tiercache_webhook_events_total", &[("type", "athlete.update"), ("outcome", outcome)])
}

fn deauthorization(subscription: u64) -> String {
    event_of(subscription, "athlete", ATHLETE, "update", ATHLETE, json!({"authorized": "false"}))
}

/// A forged deauthorization (Strava still honours the athlete's token) changes nothing.
fn forged_deauthorization_changes_nothing(subscription: Option<u64>) {
    let (mut app, up, _) = start(subscription);
    let token_file = app.dir().join(TOKEN_FILE);
    let served = app.get_cache("strava");
    assert_eq!(served.status, 200);

    let r = post_event(&app, &deauthorization(subscription.unwrap_or(SUBSCRIPTION)));
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the verdict", Duration::from_secs(10), || events(&app, "forged").filter(|n| *n >= 1.0));
    assert_eq!(events(&app, "deauthorized"), None);
    let warning = app.wait_for_log("the forged deauthorization's warning", Duration::from_secs(3), |l| {
        l["message"].as_str().is_some_and(|m| m.contains("did not confirm"))
    });
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(app.get_cache("strava").body, served.body, "still served, unchanged");
    assert!(token_file.exists() && app.data_dir().join("sources/strava_strava.json").exists());
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert_eq!((meta["error"].clone(), meta["deauthorized"].clone()), (Value::Null, json!(false)), "{meta}");

    // A refresh works, and a restart is clean.
    let lists = up.count("GET", "/api/v3/athlete/activities");
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    up.wait_for("GET", "/api/v3/athlete/activities", lists + 1, Duration::from_secs(10));
    app.stop();
    app.start_again();
    assert_eq!(app.get_cache("strava").status, 200);
    assert_eq!(app.get_cache("notes").status, 200);
}

#[test]
fn a_forged_deauthorization_without_a_recorded_subscription_changes_nothing() {
    forged_deauthorization_changes_nothing(None);
}

#[test]
fn a_forged_deauthorization_of_the_recorded_subscription_changes_nothing() {
    forged_deauthorization_changes_nothing(Some(SUBSCRIPTION));
}

#[test]
fn a_confirmed_deauthorization_purges_the_cache_and_stored_tokens_for_good_but_keeps_the_operators_file() {
    let (mut app, up, athlete) = start(None);
    let token_file = app.dir().join(TOKEN_FILE);
    let stored = app.data_dir().join("sources/strava_strava.json");
    assert!(stored.exists(), "the rotated token is kept in {}", stored.display());

    // Another athlete's deauthorization changes nothing and costs nothing.
    let calls = up.requests().len();
    let other = event("athlete", 42, "update", 42, json!({"authorized": "false"}));
    assert_eq!(post_event(&app, &other).status, 200);
    // The athlete withdraws the app's access: Strava refuses their tokens from now on.
    athlete.lock().unwrap().revoked = true;
    assert_eq!(post_event(&app, &deauthorization(SUBSCRIPTION)).status, 200);
    wait_for("the cache purged", Duration::from_secs(10), || no_data(&app).then_some(()));
    wait_for("the stored token deleted", Duration::from_secs(5), || (!stored.exists()).then_some(()));
    assert!(token_file.exists(), "the operator's refresh_token_file is never deleted");
    assert!(!app.cache_file("strava").exists());
    assert_eq!(events(&app, "deauthorized"), Some(1.0));
    let alert = app.wait_for_log("the deauthorization alert", Duration::from_secs(3), |l| {
        l["alert"] == true
            && l["cache"] == "strava"
            && l["message"].as_str().is_some_and(|m| m.contains("deauthorized"))
    });
    assert_eq!(alert["level"], "WARN", "{alert}");
    assert!(up.requests()[calls..].iter().all(|r| r.route() != "/api/v3/athlete/activities"), "{:?}", up.summary());

    // meta, POST .../refresh and `status` say what happened and what to do.
    let said = |text: &str| text.contains("deauthorized") && text.contains("SIGHUP") && text.contains("refresh_token");
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert!(meta["error"].as_str().is_some_and(said), "{meta}");
    assert_eq!(meta["deauthorized"], true);
    let r = app.request("POST", "/v1/caches/strava/refresh", None, &[]);
    assert_eq!((r.status, r.json()["code"].as_str()), (409, Some("deauthorized")), "{r:?}");
    assert!(said(&r.json()["error"].to_string()), "{r:?}");
    let status = app.run(&["status", "--config", app.config_path().to_str().unwrap()], &[]);
    assert!(said(&status.stdout), "status:\n{}\n{}", status.stdout, status.stderr);
    assert!(app.get_cache("strava").json()["error"].as_str().is_some_and(said));

    // No refresh of any kind afterwards: not on demand, not by a read, not by SIGUSR1.
    let calls = up.requests().len();
    app.signal(nix::sys::signal::Signal::SIGUSR1);
    assert!(no_data(&app));
    // SIGUSR1 was handled: it started no refresh of the deauthorized cache.
    let usr1 = app.wait_for_message("SIGUSR1: refreshing every cache with a source");
    assert_eq!(usr1["started"], 0, "{usr1}");
    assert_eq!(up.requests().len(), calls, "{:?}", up.summary());

    // kill -9 and a restart: it starts (the token file is still there), every other
    // cache serves, and nothing of the deauthorized cache comes back.
    app.kill9();
    app.start_again();
    assert_eq!(app.get_cache("notes").status, 200);
    assert!(no_data(&app), "the purged cache came back");
    // The refresher has read the deauthorization back, so it schedules no refresh.
    app.wait_for_message("cache strava was deauthorized at");
    assert!(no_data(&app));
    assert!(!stored.exists(), "the token came back");
    assert!(app.get("/v1/caches/strava/meta", &[]).json()["error"].as_str().is_some_and(said));
    assert_eq!(up.requests().len(), calls, "a refresh after the restart: {:?}", up.summary());
    // A repeated deauthorization (Strava retries) is harmless.
    assert_eq!(post_event(&app, &deauthorization(SUBSCRIPTION)).status, 200);

    // The athlete authorizes the app again; the operator writes the new token and reloads.
    athlete.lock().unwrap().revoked = false;
    std::fs::write(&token_file, "re-authorized-refresh\n").unwrap();
    assert!(reload(&app));
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("served again", Duration::from_secs(10), || (app.get_cache("strava").status == 200).then_some(()));
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert_eq!((meta["error"].clone(), meta["deauthorized"].clone()), (Value::Null, json!(false)), "{meta}");
}

#[test]
fn a_refresh_token_refused_during_an_ordinary_refresh_is_acted_on_without_an_event() {
    let (app, up, athlete) = start(None);
    athlete.lock().unwrap().revoked = true;
    // The access token is still valid: the list call's 401 renews it, which Strava refuses.
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("the cache purged", Duration::from_secs(10), || no_data(&app).then_some(()));
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    let error = meta["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("deauthorized") && error.contains("RefreshToken refresh_token invalid"), "{meta}");
    assert!(app.dir().join(TOKEN_FILE).exists());
    // The refresher stopped the cache's refreshes: no call follows.
    app.wait_for_message("deauthorized upstream; refreshes stopped");
    let calls = up.requests().len();
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert_eq!(meta["deauthorized"], true, "{meta}");
    assert_eq!(up.requests().len(), calls);
}

#[test]
fn a_refused_client_credential_keeps_stravas_words_and_purges_nothing() {
    let (app, up, _) = start(None);
    let client = r#"{"message":"Authorization Error","errors":[{"resource":"Application","field":"client_secret","code":"invalid"}]}"#;
    up.route("POST", "/oauth/token", crate::fake_upstream::Reply::json(401, client));
    // The next refresh needs a new access token: make the held one fail once.
    up.route("GET", "/api/v3/athlete/activities", crate::fake_upstream::Reply::json(401, "{}"));
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    let meta = wait_for("the refresh error", Duration::from_secs(10), || {
        let meta = app.get("/v1/caches/strava/meta", &[]).json();
        meta["last_refresh_error"].is_string().then_some(meta)
    });
    let error = meta["last_refresh_error"].as_str().unwrap();
    assert!(error.contains("client credentials") && error.contains("Application client_secret invalid"), "{error}");
    assert!(!error.contains("client-secret-s3cret"), "{error}");
    assert_eq!(meta["deauthorized"], false);
    assert_eq!(app.get_cache("strava").status, 200, "the data stays");
}
