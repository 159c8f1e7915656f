//! Incremental Strava refreshes against a fake Strava that honours `after=`: a
//! scheduled refresh asks only for activities started after the newest one held less a
//! week's overlap (a late upload is still seen), and a full re-read (asked for with
//! `?full=true`, or due every `full_refresh_every`) picks up what no incremental read
//! can see, such as an edit to an activity older than that.

use crate::fake_upstream::{strava_page, strava_summary, strava_token, FakeUpstream, Recorded};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{strava_cache, wait_for, wait_refreshed};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ACTIVITIES: &str = "/api/v3/athlete/activities";

/// The athlete's activities, newest first, as the fake serves them.
type Athlete = Arc<Mutex<Vec<Value>>>;

fn start_of(id: u64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2020-01-01T07:00:00Z").unwrap() + chrono::Duration::hours(id as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A fake Strava with activities 1..=n: pages newest first, or with `after=` only the
/// later ones, oldest first (as Strava answers such a query).
fn fake_strava(n: u64) -> (FakeUpstream, Athlete) {
    let up = FakeUpstream::start();
    up.route("POST", "/oauth/token", strava_token("access-1", "configured-refresh"));
    let athlete: Athlete = Arc::new(Mutex::new((1..=n).rev().map(|id| strava_summary(id, &start_of(id))).collect()));
    let served = athlete.clone();
    up.route_fn("GET", ACTIVITIES, move |req, _| {
        let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let per_page: usize = req.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
        let mut items = served.lock().unwrap().clone();
        if let Some(after) = req.query("after").and_then(|a| a.parse::<i64>().ok()) {
            items.retain(|a| {
                chrono::DateTime::parse_from_rfc3339(a["start_date"].as_str().unwrap()).unwrap().timestamp() > after
            });
            items.reverse();
        }
        let page: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
        strava_page(&page)
    });
    (up, athlete)
}

fn list_calls(up: &FakeUpstream) -> Vec<Recorded> {
    up.requests_to("GET", ACTIVITIES)
}

fn ids(doc: &Value) -> Vec<u64> {
    doc["activities"].as_array().unwrap_or_else(|| panic!("{doc}")).iter().map(|a| a["id"].as_u64().unwrap()).collect()
}

#[test]
fn a_scheduled_refresh_of_1000_activities_and_one_new_one_makes_one_list_call() {
    let (up, athlete) = fake_strava(1000);
    let app = spawn_app_with(Options::new().tables(&strava_cache(&up.base_url(), "2s", None, 200)));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    assert_eq!(list_calls(&up).len(), 6, "the first read is full: 5 pages and an empty one");

    athlete.lock().unwrap().insert(0, strava_summary(1001, &start_of(1001)));
    wait_refreshed(&app, "strava", 2, Duration::from_secs(10));
    let calls = list_calls(&up);
    assert_eq!(calls.len(), 7, "one list call, not six: {:?}", up.summary());
    // A week (the documented overlap) before the newest activity held.
    let newest = chrono::DateTime::parse_from_rfc3339(&start_of(1000)).unwrap().timestamp();
    let after = (newest - 7 * 24 * 3600).to_string();
    assert_eq!(calls[6].query("after").as_deref(), Some(after.as_str()), "{:?}", calls[6]);

    let doc = app.get_cache("strava").json();
    let held = ids(&doc);
    assert_eq!(held.len(), 1001);
    assert_eq!(held[..3], [1001, 1000, 999], "the new one first");
}

#[test]
fn a_full_refresh_notices_an_edit_made_without_an_event() {
    // Activities an hour apart: the oldest started more than a week before the newest.
    let (up, athlete) = fake_strava(200);
    let config = strava_cache(&up.base_url(), "1h", None, 200) + "full_refresh_every = \"3s\"\n";
    let app = spawn_app_with(Options::new().tables(&config));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));

    // An edit of an activity older than the overlap: an incremental read cannot see it.
    athlete.lock().unwrap()[199]["name"] = "Renamed".into();
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_refreshed(&app, "strava", 2, Duration::from_secs(5));
    assert!(list_calls(&up).last().unwrap().query("after").is_some(), "{:?}", up.summary());
    assert_eq!(app.get_cache("strava").json()["activities"][199]["name"], "Morning Run 1");

    // Asked for: a full read, which brings the edit.
    let r = app.request("POST", "/v1/caches/strava/refresh?full=true", None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    wait_refreshed(&app, "strava", 3, Duration::from_secs(5));
    assert!(list_calls(&up).last().unwrap().query("after").is_none(), "{:?}", up.summary());
    assert_eq!(app.get_cache("strava").json()["activities"][199]["name"], "Renamed");
    // The "refreshed" line is logged just before meta's record of it is published.
    let meta = wait_for("the full read recorded", Duration::from_secs(3), || {
        let meta = app.get("/v1/caches/strava/meta", &[]).json();
        (meta["last_refresh"]["reason"] == "full").then_some(meta)
    });
    assert_eq!(meta["last_refresh"]["reason"], "full");

    // Unasked, once full_refresh_every has passed since the last full read.
    athlete.lock().unwrap()[4]["name"] = "Renamed too".into();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(app.request("POST", "/v1/caches/strava/refresh", None, &[]).status, 202);
    wait_for("the edit through the due full read", Duration::from_secs(5), || {
        (app.get_cache("strava").json()["activities"][4]["name"] == "Renamed too").then_some(())
    });

    let r = app.request("POST", "/v1/caches/strava/refresh?full=maybe", None, &[]);
    assert_eq!((r.status, r.json()["code"].as_str()), (400, Some("bad_query")), "{r:?}");
}
