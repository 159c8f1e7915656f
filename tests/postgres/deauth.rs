//! A Strava deauthorization with Postgres: the cache's row and the athlete's
//! `source_state` token row are gone, and neither `kill -9` nor a restart (nor a lost
//! `data_dir`) brings the cache, its token or its refreshes back.

use crate::helpers::{cluster, row, toml_str, wait_for, Conf, ARRIVAL, DB};
use serde_json::json;
use std::time::Duration;
use tiercache_testkit::fake_http::{FakeServer, Recorded, Reply};
use tiercache_testkit::Daemon;

const ATHLETE: u64 = 134815;

fn fake_strava() -> FakeServer {
    FakeServer::start(|req: &Recorded| match (req.method.as_str(), req.route()) {
        ("POST", "/oauth/token") => Reply::ok(&json!({"access_token": "access-1", "refresh_token": "rotated-1",
            "expires_in": 21600, "expires_at": chrono::Utc::now().timestamp() + 21600})),
        ("GET", "/api/v3/athlete") => Reply::ok(&json!({"id": ATHLETE})),
        ("GET", "/api/v3/athlete/activities") if req.query("page").as_deref() == Some("1") => {
            Reply::ok(&json!([{"id": 1, "name": "Run", "start_date": "2025-04-01T07:00:00Z"}]))
        }
        ("GET", "/api/v3/athlete/activities") => Reply::ok(&json!([])),
        _ => Reply::json(404, "{}"),
    })
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
    let deauth = json!({"object_type": "athlete", "object_id": ATHLETE, "aspect_type": "update", "owner_id": ATHLETE,
        "subscription_id": 1, "event_time": 1, "updates": {"authorized": "false"}});
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
    let strava = fake_strava();
    let tables = strava_cache(&strava);
    let mut d = Conf::new(pg.url(DB, "postgres")).tables(&tables).start();
    wait_for("the row", ARRIVAL, || row(&pg, "strava").map(|_| ()));
    wait_for("the token and sync state", ARRIVAL, || {
        (state_keys(&pg).trim() == "strava:strava,stravasync:strava").then_some(())
    });

    deauthorize(&d);
    wait_for("the row deleted", ARRIVAL, || row(&pg, "strava").is_none().then_some(()));
    wait_for("the token state deleted", ARRIVAL, || (state_keys(&pg).trim() == "stravasync:strava").then_some(()));
    assert_eq!(d.get_cache("strava").status, 503);
    let calls = strava.requests().len();

    d.kill9();
    d.start_again();
    assert_eq!(d.get_cache("strava").status, 503, "the purged cache came back after kill -9");
    // Without data_dir the marker comes from Postgres.
    d.stop();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    d.start_again();
    std::thread::sleep(Duration::from_millis(1500));
    let r = d.get_cache("strava");
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("no_data")), "{r:?}");
    assert!(row(&pg, "strava").is_none());
    assert_eq!(state_keys(&pg).trim(), "stravasync:strava");
    assert_eq!(strava.requests().len(), calls, "an upstream call after the deauthorization");
}

#[test]
fn every_instance_stops_serving_and_refreshing_a_deauthorized_cache() {
    let pg = cluster();
    let strava = fake_strava();
    let tables = strava_cache(&strava);
    let conf = Conf::new(pg.url(DB, "postgres")).tables(&tables);
    let a = conf.start();
    wait_for("the row", ARRIVAL, || row(&pg, "strava").map(|_| ()));
    let mut b = conf.start();
    wait_for("the document on the second instance", ARRIVAL, || (b.get_cache("strava").status == 200).then_some(()));

    deauthorize(&a);
    wait_for("the row deleted", ARRIVAL, || row(&pg, "strava").is_none().then_some(()));
    let calls = strava.requests().len();
    for (name, d) in [("first", &a), ("second", &b)] {
        wait_for(&format!("no_data on the {name} instance"), ARRIVAL, || {
            let r = d.get_cache("strava");
            (r.status == 503 && r.json()["code"] == "no_data").then_some(())
        });
    }
    b.restart();
    let r = b.get_cache("strava");
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("no_data")), "{r:?}");
    assert!(row(&pg, "strava").is_none(), "the second instance brought the row back");
    assert!(!b.data_dir().join("sources/strava_strava.json").exists(), "the second instance kept a token");
    assert_eq!(strava.requests().len(), calls, "an upstream call after the deauthorization");
}
