//! Log lines an operator reads to find a cause: a failed refresh says whether any
//! data is still served, a JustGiving 401 names the key to check, and the SIGUSR2
//! snapshot is made of fields rather than JSON inside a string.

use crate::fake_upstream::{FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{failed_lines, http_cache};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::time::Duration;
use tiercache_testkit::daemon::message;

const NO_DATA: &str = "refresh failed; no data is served until a refresh succeeds";
const OLD_DATA: &str = "refresh failed; the old data keeps being served";

#[test]
fn a_failed_refresh_says_whether_old_data_is_still_served() {
    let up = FakeUpstream::start();
    up.route("GET", "/feed", Reply::json(500, r#"{"message":"down"}"#));
    let app = spawn_app_with(Options::new().tables(&http_cache("feed", &up.url("/feed"), Some("1h"))));
    let first =
        app.wait_for_log("a failed refresh", Duration::from_secs(5), |l| message(l).starts_with("refresh failed"));
    assert_eq!(message(&first), NO_DATA, "nothing was ever saved: {first}");

    // With a document on disk, the next failure says it keeps being served.
    app.put_ok("feed", r#"{"v": 1}"#);
    assert_eq!(app.request("POST", "/v1/caches/feed/refresh", None, &[]).status, 202);
    let later = app.wait_for_log("a failure with data", Duration::from_secs(5), |l| message(l) == OLD_DATA);
    assert_eq!(later["cache"], "feed", "{later}");
    assert!(failed_lines(&app, "feed").len() >= 2);
}

#[test]
fn a_justgiving_401_names_app_id_file() {
    let up = FakeUpstream::start();
    up.route("GET", "/wrong-id/v1/fundraising/pages/page", Reply::json(401, r#"{"errorMessage":"x"}"#));
    let tables = format!(
        "[[caches]]\nname = \"fundraising\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"justgiving\"\n\
         app_id = \"wrong-id\"\npage_short_name = \"page\"\nbase_url = \"{}\"\n",
        up.base_url()
    );
    let app = spawn_app_with(Options::new().tables(&tables));
    let line = app.wait_for_log("the 401", Duration::from_secs(5), |l| message(l).starts_with("refresh failed"));
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("401") && error.contains("app_id_file"), "{line}");
    assert!(!error.contains("wrong-id"), "the app id is a secret: {line}");
}

#[test]
fn the_status_snapshot_is_made_of_fields() {
    let mut app = spawn_app_with(Options::new().caches(&["strava", "fundraising"]));
    let put = app.put_ok("strava", "[1]").json();
    app.signal(Signal::SIGUSR2);
    let head = app.wait_for_message("status snapshot");
    assert_eq!(head["ready"], json!(true), "{head}");
    assert_eq!(head["memory_actor"], json!(true), "{head}");
    let summary = head["caches"].as_str().unwrap_or_default();
    let version = put["version"].as_u64().unwrap();
    assert!(summary.starts_with(&format!("strava: memory v{version}, file v{version}, ")), "{head}");
    assert!(summary.ends_with("; fundraising: no data"), "{head}");
    assert!(head.get("snapshot").is_none(), "no JSON inside a string: {head}");
    let strava = app.wait_for_log("strava's line", Duration::from_secs(5), |l| {
        message(l) == "status snapshot: cache" && l["cache"] == "strava"
    });
    assert_eq!(strava["file_version"], put["version"], "{strava}");
    assert_eq!(strava["memory_version"], put["version"], "{strava}");
    assert!(strava["age_seconds"].as_i64().is_some(), "{strava}");
    let fundraising = app.wait_for_log("fundraising's line", Duration::from_secs(5), |l| {
        message(l) == "status snapshot: cache" && l["cache"] == "fundraising"
    });
    assert_eq!(fundraising.get("file_version"), None::<&Value>, "no document: {fundraising}");
    app.stop();
}
