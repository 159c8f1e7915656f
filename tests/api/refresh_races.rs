//! A refresh racing a PUT: a fetch that builds on the held document and waits on a slow
//! upstream call saves on condition that the version it built on is still current; a PUT
//! acknowledged meanwhile is never overwritten by it (its changes are merged again on
//! top of the PUT), and a whole-document fetch started before the PUT is dropped.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{wait_for, wait_refreshed};
use crate::webhook_support::{event, fake_strava, post_event, start_of, tables, ATHLETE};
use serde_json::{json, Value};
use std::time::Duration;

/// The served document's activity of `id`, if any.
fn activity(doc: &Value, id: u64) -> Option<Value> {
    doc["activities"].as_array()?.iter().find(|a| a["id"] == id).cloned()
}

#[test]
fn a_put_acknowledged_during_a_webhook_fetch_with_a_slow_detail_call_survives() {
    let (up, athlete) = fake_strava(10);
    let app = spawn_app_with(Options::new().tables(&tables(&up.base_url())));
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete id", Duration::from_secs(5), || {
        (up.count("GET", "/api/v3/athlete") > 0 && app.get_cache("strava").status == 200).then_some(())
    });
    athlete.lock().unwrap().detail_delay = Duration::from_secs(3);

    // An update of a held activity: one detail call, slow.
    let r = post_event(&app, &event("activity", 5, "update", ATHLETE, json!({"title": "Renamed"})));
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the detail call", Duration::from_secs(5), || (up.count("GET", "/api/v3/activities/5") > 0).then_some(()));

    // While it waits, a PUT adds an activity of its own.
    let mut put: Value = app.get_cache("strava").json();
    put["activities"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"id": 999, "name": "Entered by hand", "start_date": start_of(999), "type": "Run"}));
    let r = app.put_json("strava", &put.to_string());
    assert_eq!(r.status, 200, "{r:?}");
    let put_version = r.json()["version"].as_u64().unwrap();

    // The webhook's change lands on top of the PUT, which is still there.
    let doc = wait_for("the detail merged", Duration::from_secs(10), || {
        let doc: Value = app.get_cache("strava").json();
        activity(&doc, 5).filter(|a| a["description"] == "detail of 5").map(|_| doc)
    });
    assert_eq!(activity(&doc, 999).map(|a| a["name"].clone()), Some(json!("Entered by hand")), "{doc}");
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    assert!(meta["version"].as_u64().unwrap() > put_version, "{meta}");
}

#[test]
fn a_whole_document_fetch_started_before_a_put_does_not_erase_it() {
    let up = FakeUpstream::start();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    up.route_fn("GET", "/total", move |_, _| {
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The first answer is quick; the second (the on-demand refresh) slow.
        let delay = if n == 0 { Duration::ZERO } else { Duration::from_secs(3) };
        Reply::ok(&json!({"total": n})).delay(delay)
    });
    let table = format!(
        "[[caches]]\nname = \"fundraising\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"http\"\nurl = \"{}/total\"\n",
        up.base_url()
    );
    let app = spawn_app_with(Options::new().tables(&table));
    wait_refreshed(&app, "fundraising", 1, Duration::from_secs(10));
    assert_eq!(app.request("POST", "/v1/caches/fundraising/refresh", None, &[]).status, 202);
    wait_for("the slow call", Duration::from_secs(5), || (up.count("GET", "/total") >= 2).then_some(()));
    let r = app.put_json("fundraising", r#"{"total": "by hand"}"#);
    assert_eq!(r.status, 200, "{r:?}");

    let meta = wait_for("the refresh ended", Duration::from_secs(10), || {
        let meta = app.get("/v1/caches/fundraising/meta", &[]).json();
        (meta["last_refresh"]["result"] == "superseded").then_some(meta)
    });
    assert_eq!(app.get_cache("fundraising").json(), json!({"total": "by hand"}), "{meta}");
}
