//! A Strava athlete's deauthorization: the athlete's caches are purged as `DELETE`
//! does, their stored refresh tokens deleted, their schedules stopped, and neither a
//! `kill -9` nor a restart brings any of it back.

use crate::fake_upstream::strava_token;
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{wait_for, wait_refreshed};
use crate::webhook_support::{event, fake_strava, post_event, tables, ATHLETE};
use serde_json::json;
use std::time::Duration;
use tiercache_testkit::Daemon;

fn no_data(app: &Daemon) -> bool {
    let r = app.get_cache("strava");
    r.status == 503 && r.json()["code"] == "no_data"
}

#[test]
fn a_deauthorization_purges_the_cache_and_its_tokens_for_good() {
    let (up, _) = fake_strava(5);
    up.route("POST", "/oauth/token", strava_token("access-1", "rotated-1"));
    let mut app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    let token_file = app.data_dir().join("sources/strava_strava.json");
    wait_for("the athlete id", Duration::from_secs(5), || {
        up.requests().iter().any(|r| r.route() == "/api/v3/athlete").then_some(())
    });
    assert!(token_file.exists(), "the rotated token is kept in {}", token_file.display());
    assert!(app.cache_file("strava").exists());

    // Another athlete's deauthorization changes nothing.
    let other = event("athlete", 42, "update", 42, json!({"authorized": "false"}));
    assert_eq!(post_event(&app, &other).status, 200);
    let deauth = event("athlete", ATHLETE, "update", ATHLETE, json!({"authorized": "false"}));
    let r = post_event(&app, &deauth);
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the cache purged", Duration::from_secs(5), || no_data(&app).then_some(()));
    wait_for("the token file deleted", Duration::from_secs(5), || (!token_file.exists()).then_some(()));
    assert!(!app.cache_file("strava").exists());
    let alert = app.wait_for_log("the deauthorization alert", Duration::from_secs(3), |l| {
        l["alert"] == true
            && l["cache"] == "strava"
            && l["message"].as_str().is_some_and(|m| m.contains("deauthorized"))
    });
    assert_eq!(alert["level"], "WARN", "{alert}");

    // No refresh of any kind afterwards: not on demand, not by a read, not by SIGUSR1.
    let calls = up.requests().len();
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 409);
    app.signal(nix::sys::signal::Signal::SIGUSR1);
    assert!(no_data(&app));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(up.requests().len(), calls, "{:?}", up.summary());

    // kill -9 and a restart bring nothing back, and still make no upstream call.
    app.kill9();
    app.start_again();
    assert!(no_data(&app), "the purged cache came back");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(no_data(&app));
    assert!(!token_file.exists(), "the token came back");
    assert_eq!(up.requests().len(), calls, "a refresh after the restart: {:?}", up.summary());

    // A repeated deauthorization (Strava retries) is harmless.
    assert_eq!(post_event(&app, &deauth).status, 200);
}
