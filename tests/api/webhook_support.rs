//! A fake Strava for the webhook tests (activities, detail, the athlete, tokens) and
//! helpers to post events like Strava's Webhook Events API does.

#![allow(dead_code)]

use crate::fake_upstream::{strava_page, strava_summary, strava_token, FakeUpstream, Reply};
use crate::refresh_support::strava_cache;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiercache_testkit::Daemon;

/// The athlete of every test cache.
pub const ATHLETE: u64 = 134815;
/// The verify token the tests configure.
pub const VERIFY: &str = "verify-s3cret-token";

/// Activities newest first, how long a call takes, and whether the athlete
/// deauthorized the app (Strava then refuses their refresh token and access tokens).
#[derive(Default)]
pub struct Athlete {
    pub activities: Vec<Value>,
    pub detail_delay: Duration,
    pub list_delay: Duration,
    pub revoked: bool,
    /// `GET /api/v3/athlete` answers this status (200 when 0).
    pub athlete_status: u16,
}

/// Strava's answer to a refresh token it no longer honours.
pub const REFUSED_TOKEN: &str =
    r#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#;

/// Start dates an hour apart from 2020-01-01, by id.
pub fn start_of(id: u64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2020-01-01T07:00:00Z").unwrap() + chrono::Duration::hours(id as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A fake Strava serving activities 1..=n of [`ATHLETE`].
pub fn fake_strava(n: u64) -> (FakeUpstream, Arc<Mutex<Athlete>>) {
    let up = FakeUpstream::start();
    let athlete = Arc::new(Mutex::new(Athlete {
        activities: (1..=n).rev().map(|id| strava_summary(id, &start_of(id))).collect(),
        ..Athlete::default()
    }));
    let tokens = athlete.clone();
    up.route_fn("POST", "/oauth/token", move |_, _| {
        if tokens.lock().unwrap().revoked {
            Reply::json(400, REFUSED_TOKEN)
        } else {
            strava_token("access-1", "rotated-1")
        }
    });
    let served = athlete.clone();
    up.route_fn("GET", "/api/v3/", move |req, _| {
        let a = served.lock().unwrap();
        let route = req.route();
        if a.revoked {
            return Reply::json(401, r#"{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}"#);
        }
        if route == "/api/v3/athlete" {
            return match a.athlete_status {
                0 | 200 => Reply::ok(&json!({"id": ATHLETE, "username": "runner", "resource_state": 2})),
                status => Reply::json(status, r#"{"message":"Error"}"#),
            };
        }
        if let Some(id) = route.strip_prefix("/api/v3/activities/").and_then(|s| s.parse::<u64>().ok()) {
            return match a.activities.iter().find(|x| x["id"] == id) {
                Some(found) => {
                    let mut detail = found.clone();
                    detail["description"] = json!(format!("detail of {id}"));
                    Reply::ok(&detail).delay(a.detail_delay)
                }
                None => Reply::json(404, r#"{"message":"Record Not Found"}"#).delay(a.detail_delay),
            };
        }
        let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let per_page: usize = req.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
        let mut items = a.activities.clone();
        if let Some(after) = req.query("after").and_then(|s| s.parse::<i64>().ok()) {
            items.retain(|x| {
                chrono::DateTime::parse_from_rfc3339(x["start_date"].as_str().unwrap()).unwrap().timestamp() > after
            });
            items.reverse();
        }
        strava_page(&items.into_iter().skip((page - 1) * per_page).take(per_page).collect::<Vec<_>>())
            .delay(a.list_delay)
    });
    (up, athlete)
}

/// `[webhooks]` with [`VERIFY`] and a strava cache refreshed hourly at `base_url`.
pub fn tables(base_url: &str) -> String {
    format!("[webhooks]\nstrava_verify_token = \"{VERIFY}\"\n\n{}", strava_cache(base_url, "1h", None, 200))
}

/// Like [`tables`], with the refresh token in `refresh_token_file` (a file the
/// operator wrote, relative to the daemon's directory).
pub fn tables_with_token_file(base_url: &str, file: &str) -> String {
    tables(base_url).replace("refresh_token = \"configured-refresh\"", &format!("refresh_token_file = \"{file}\""))
}

/// The subscription id of [`event`]'s events.
pub const SUBSCRIPTION: u64 = 120475;

/// An event body as Strava posts it.
pub fn event(object_type: &str, id: u64, aspect: &str, owner: u64, updates: Value) -> String {
    json!({
        "object_type": object_type, "object_id": id, "aspect_type": aspect, "owner_id": owner,
        "subscription_id": 120475, "event_time": 1516126040, "updates": updates,
    })
    .to_string()
}

/// An event of subscription `subscription`.
pub fn event_of(subscription: u64, object_type: &str, id: u64, aspect: &str, owner: u64, updates: Value) -> String {
    event(object_type, id, aspect, owner, updates).replace(&SUBSCRIPTION.to_string(), &subscription.to_string())
}

/// Records subscription `id` in the daemon's `data_dir` (what `strava subscribe` does).
pub fn record_subscription(app: &Daemon, id: u64) {
    std::fs::create_dir_all(app.data_dir().join("webhooks")).unwrap();
    let record = json!({"id": id, "callback_url": "https://cache.example.com/v1/webhooks/strava"});
    std::fs::write(app.data_dir().join("webhooks/strava.json"), record.to_string()).unwrap();
}

/// POSTs `body` to the webhook route.
pub fn post_event(app: &Daemon, body: &str) -> tiercache_testkit::Response {
    app.request("POST", "/v1/webhooks/strava", Some(body.as_bytes()), &[("Content-Type", "application/json")])
}

/// The ids the cache serves.
pub fn served_ids(app: &Daemon) -> Vec<u64> {
    let r = app.get_cache("strava");
    if r.status != 200 {
        return Vec::new();
    }
    r.json()["activities"].as_array().map(|a| a.iter().filter_map(|x| x["id"].as_u64()).collect()).unwrap_or_default()
}
