//! A Strava deauthorization with Postgres, once Strava confirmed it: the cache's row
//! and the athlete's `source_state` token row are gone, and neither `kill -9` nor a
//! restart (nor a lost `data_dir`) brings the cache, its token or its refreshes back.
//! The subscription id recorded on one instance is known to every instance; a
//! refresh token rotated by another instance is not mistaken for a deauthorization.

use crate::helpers::{cluster, message, row, seen, toml_str, wait_for, Conf, ARRIVAL, DB};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiercache_testkit::fake_http::{FakeServer, Recorded, Reply};
use tiercache_testkit::Daemon;

const ATHLETE: u64 = 134815;

/// A fake Strava; once `revoked` is set, it refuses the athlete's tokens.
fn fake_strava() -> (FakeServer, Arc<AtomicBool>) {
    let revoked = Arc::new(AtomicBool::new(false));
    let refused = revoked.clone();
    let server = FakeServer::start(move |req: &Recorded| match (req.method.as_str(), req.route()) {
        ("POST", "/oauth/token") if refused.load(Ordering::SeqCst) => Reply::json(
            400,
            r#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#,
        ),
        (_, _) if refused.load(Ordering::SeqCst) => Reply::json(401, r#"{"message":"Authorization Error"}"#),
        ("POST", "/oauth/token") => Reply::ok(&json!({"access_token": "access-1", "refresh_token": "rotated-1",
            "expires_in": 21600, "expires_at": chrono::Utc::now().timestamp() + 21600})),
        ("GET", "/api/v3/athlete") => Reply::ok(&json!({"id": ATHLETE})),
        ("GET", "/api/v3/athlete/activities") if req.query("page").as_deref() == Some("1") => {
            Reply::ok(&json!([{"id": 1, "name": "Run", "start_date": "2025-04-01T07:00:00Z"}]))
        }
        ("GET", "/api/v3/athlete/activities") => Reply::ok(&json!([])),
        _ => Reply::json(404, "{}"),
    });
    (server, revoked)
}

/// The `strava` cache, refreshed hourly from `strava`, with webhooks on.
fn strava_cache(strava: &FakeServer) -> String {
    format!(
        "[webhooks]\nstrava_verify_token = \"verify-1\"\n[[caches]]\nname = \"strava\"\nrefresh_every = \"1h\"\n\
         [caches.source]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"\nrefresh_token = \"configured\"\n\
         base_url = {}\n",
        toml_str(&strava.base_url())
    )
}

/// Strava's webhook saying the athlete took the authorization back, sent to `d`.
fn deauthorize(d: &Daemon) {
    post(
        d,
        json!({"object_type": "athlete", "object_id": ATHLETE, "aspect_type": "update", "owner_id": ATHLETE,
        "subscription_id": 1, "event_time": 1, "updates": {"authorized": "false"}}),
    );
}

fn post(d: &Daemon, event: serde_json::Value) {
    let deauth = event;
    let r = d.request(
        "POST",
        "/v1/webhooks/strava",
        Some(deauth.to_string().as_bytes()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200, "{r:?}");
}

fn state_keys(pg: &tiercache_testkit::PgCluster) -> String {
    pg.psql(DB, "SELECT coalesce(string_agg(state_key, ',' ORDER BY state_key), '') FROM source_state").unwrap()
}

#[test]
fn a_deauthorization_removes_the_row_and_the_token_state_for_good() {
    let pg = cluster();
    let (strava, revoked) = fake_strava();
    let tables = strava_cache(&strava);
    let mut d = Conf::new(pg.url(DB, "postgres")).tables(&tables).start();
    wait_for("the row", ARRIVAL, || row(&pg, "strava").map(|_| ()));
    wait_for("the token and sync state", ARRIVAL, || {
        let keys = state_keys(&pg);
        let done = keys.trim() == "strava:strava,stravasync:strava";
        seen(keys, done)
    });

    revoked.store(true, Ordering::SeqCst);
    deauthorize(&d);
    wait_for("the row deleted", ARRIVAL, || {
        let r = row(&pg, "strava");
        let done = r.is_none();
        seen(r, done)
    });
    wait_for("the token state deleted", ARRIVAL, || {
        let keys = state_keys(&pg);
        let done = keys.trim() == "stravasync:strava";
        seen(keys, done)
    });
    assert_eq!(d.get_cache("strava").status, 503);
    let calls = strava.requests().len();

    d.kill9();
    d.start_again();
    assert_eq!(d.get_cache("strava").status, 503, "the purged cache came back after kill -9");
    // Without data_dir the marker comes from Postgres.
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.start_again();
    // The refresher has read the deauthorization back from Postgres (and so makes no
    // upstream call).
    d.wait_for_log("the deauthorization read back", Duration::from_secs(10), |l| {
        message(l).starts_with("cache strava was deauthorized at")
    });
    let r = d.get_cache("strava");
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("no_data")), "{r:?}");
    assert!(row(&pg, "strava").is_none());
    assert_eq!(state_keys(&pg).trim(), "stravasync:strava");
    assert_eq!(strava.requests().len(), calls, "an upstream call after the deauthorization");
}

#[test]
fn every_instance_stops_serving_and_refreshing_a_deauthorized_cache() {
    let pg = cluster();
    let (strava, revoked) = fake_strava();
    let tables = strava_cache(&strava);
    let conf = Conf::new(pg.url(DB, "postgres")).tables(&tables);
    let a = conf.start();
    wait_for("the row", ARRIVAL, || row(&pg, "strava").map(|_| ()));
    let mut b = conf.start();
    wait_for("the document on the second instance", ARRIVAL, || {
        let r = b.get_cache("strava");
        let done = r.status == 200;
        seen(r, done)
    });

    revoked.store(true, Ordering::SeqCst);
    deauthorize(&a);
    wait_for("the row deleted", ARRIVAL, || {
        let r = row(&pg, "strava");
        let done = r.is_none();
        seen(r, done)
    });
    let calls = strava.requests().len();
    for (name, d) in [("first", &a), ("second", &b)] {
        wait_for(&format!("no_data on the {name} instance"), ARRIVAL, || {
            let r = d.get_cache("strava");
            let done = r.status == 503 && r.json()["code"] == "no_data";
            seen(r, done)
        });
    }
    b.restart();
    let r = b.get_cache("strava");
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("no_data")), "{r:?}");
    assert!(row(&pg, "strava").is_none(), "the second instance brought the row back");
    assert!(!b.data_dir().join("sources/strava_strava.json").exists(), "the second instance kept a token");
    assert_eq!(strava.requests().len(), calls, "an upstream call after the deauthorization");
}

#[test]
fn a_forged_deauthorization_removes_nothing_from_postgres() {
    let pg = cluster();
    let (strava, _) = fake_strava();
    let d = Conf::new(pg.url(DB, "postgres")).tables(&strava_cache(&strava)).start();
    wait_for("the row", ARRIVAL, || row(&pg, "strava").map(|_| ()));
    wait_for("the token and sync state", ARRIVAL, || {
        let keys = state_keys(&pg);
        let done = keys.trim() == "strava:strava,stravasync:strava";
        seen(keys, done)
    });
    let before = row(&pg, "strava").expect("the row");
    deauthorize(&d);
    wait_for("Strava's verdict", ARRIVAL, || {
        let n = d.metric("tiercache_webhook_events_total{type=\"athlete.update\",outcome=\"forged\"}");
        let done = n.is_some_and(|n| n >= 1.0);
        seen(n, done)
    });
    assert_eq!(row(&pg, "strava").map(|r| r.version), Some(before.version), "the row stays");
    assert_eq!(state_keys(&pg).trim(), "strava:strava,stravasync:strava", "the tokens stay");
    assert_eq!(d.get_cache("strava").status, 200);
}

#[test]
fn the_recorded_subscription_is_known_to_every_instance() {
    let pg = cluster();
    let (strava, _) = fake_strava();
    let conf = Conf::new(pg.url(DB, "postgres")).tables(&strava_cache(&strava));
    let mut a = tiercache_testkit::Daemon::new(std::path::Path::new(crate::helpers::BIN), conf.options());
    std::fs::create_dir_all(a.data_dir().join("webhooks")).unwrap();
    std::fs::write(a.data_dir().join("webhooks/strava.json"), r#"{"id": 7, "callback_url": "https://x/"}"#).unwrap();
    a.start_again();
    let b = conf.start();
    assert!(!b.data_dir().join("webhooks/strava.json").exists());
    let event = |subscription: u64| {
        json!({"object_type": "activity", "object_id": 99, "aspect_type": "create", "owner_id": ATHLETE,
            "subscription_id": subscription, "event_time": 1, "updates": {}})
    };
    // The first event makes the first instance publish its record.
    post(&a, event(7));
    wait_for("the shared record", ARRIVAL, || {
        let keys = state_keys(&pg);
        let done = keys.contains("stravahook:subscription");
        seen(keys, done)
    });
    // The second instance, which has no record of its own, drops the other subscription's.
    let dropped = wait_for("the second instance dropping another subscription's event", ARRIVAL, || {
        post(&b, event(8));
        b.metric("tiercache_webhook_events_total{type=\"activity.create\",outcome=\"other_subscription\"}")
    });
    assert!(dropped >= 1.0);
}

#[test]
fn a_refresh_token_another_instance_rotated_is_not_a_deauthorization() {
    let pg = cluster();
    // Strava honours only the newest refresh token, rotates it at every use, and hands
    // out access tokens that expire at once; `outcomes` logs each token call.
    let current = Arc::new(std::sync::Mutex::new("configured".to_owned()));
    let outcomes: Arc<std::sync::Mutex<Vec<bool>>> = Arc::default();
    let (honoured, log) = (current.clone(), outcomes.clone());
    let strava = FakeServer::start(move |req: &Recorded| match (req.method.as_str(), req.route()) {
        ("POST", "/oauth/token") => {
            let mut current = honoured.lock().unwrap();
            let accepted = req.form("refresh_token").as_deref() == Some(current.as_str());
            log.lock().unwrap().push(accepted);
            if !accepted {
                return Reply::json(
                    400,
                    r#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#,
                );
            }
            *current = format!("rotated-{}", log.lock().unwrap().len());
            Reply::ok(&json!({"access_token": format!("access-{current}"), "refresh_token": *current,
                "expires_in": 1, "expires_at": chrono::Utc::now().timestamp() + 1}))
        }
        ("GET", "/api/v3/athlete") => Reply::ok(&json!({"id": ATHLETE})),
        ("GET", "/api/v3/athlete/activities") if req.query("page").as_deref() == Some("1") => {
            Reply::ok(&json!([{"id": 1, "name": "Run", "start_date": "2025-04-01T07:00:00Z"}]))
        }
        ("GET", "/api/v3/athlete/activities") => Reply::ok(&json!([])),
        _ => Reply::json(404, "{}"),
    });
    let conf = Conf::new(pg.url(DB, "postgres")).tables(&strava_cache(&strava));
    let a = conf.start();
    wait_for("the first instance's refresh", ARRIVAL, || {
        let r = a.get_cache("strava");
        let done = r.status == 200;
        seen(r, done)
    });
    let b = conf.start();
    wait_for("the document on the second instance", ARRIVAL, || {
        let r = b.get_cache("strava");
        let done = r.status == 200;
        seen(r, done)
    });
    // The second instance refreshes on demand (after the leader's grace) and rotates
    // the token; then the first renews with the token it holds, which Strava refuses:
    // the newest one is in Postgres.
    let calls = outcomes.lock().unwrap().len();
    assert_eq!(b.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("the second instance's renewal", ARRIVAL, || {
        let log = outcomes.lock().unwrap().clone();
        let done = log.len() > calls;
        seen(log, done)
    });
    assert_eq!(a.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("a refused rotated token, then a renewal with the shared one", ARRIVAL, || {
        let log = outcomes.lock().unwrap().clone();
        let done = log.iter().position(|ok| !ok).is_some_and(|first| log[first..].contains(&true));
        seen(log, done)
    });
    wait_for("the first instance's refresh", ARRIVAL, || {
        let meta = a.get("/v1/caches/strava/meta", &[]).json();
        let done = meta["last_refresh"]["reason"] == "manual";
        seen(meta, done)
    });
    for d in [&a, &b] {
        let meta = d.get("/v1/caches/strava/meta", &[]).json();
        assert_eq!(meta["deauthorized"], false, "{meta}");
        assert_eq!(d.get_cache("strava").status, 200);
    }
    assert!(row(&pg, "strava").is_some());
    assert!(state_keys(&pg).contains("strava:strava"));
}
