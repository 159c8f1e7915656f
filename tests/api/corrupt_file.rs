//! A cache file that fails to parse or whose checksum does not match is never served,
//! is moved to `data_dir/corrupt/`, and is logged.

use crate::helpers::spawn_app;
use serde_json::Value;
use std::fs;
use std::time::Duration;
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

/// Waits for the ERROR line about the corrupt `strava` file.
fn assert_corruption_logged(app: &Daemon) {
    let line = app.wait_for_log("at level ERROR about the corrupt strava file", Duration::from_secs(5), |l| {
        l["level"] == "ERROR" && l["cache"] == "strava" && message(l).contains("corrupt")
    });
    assert!(line.get("timestamp").is_some() && line.get("target").is_some(), "{line}");
}

fn assert_moved_aside(app: &Daemon) {
    assert!(!app.cache_file("strava").exists(), "the corrupt file is still in caches/");
    let aside = app.files_in("corrupt");
    assert_eq!(aside.len(), 1, "one file in corrupt/: {aside:?}");
    let name = aside[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("strava"), "{name}");
}

#[test]
fn garbage_file_is_never_served() {
    let mut app = spawn_app();
    app.put_ok("strava", r#"{"n": 12345}"#);
    app.restart();
    fs::write(app.cache_file("strava"), b"{ this is not json").unwrap();

    let r = app.get_cache("strava");
    assert_eq!(r.status, 503, "{r:?}");
    r.assert_json_error();
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_moved_aside(&app);
    assert_corruption_logged(&app);
    // Still nothing served on a second try.
    assert_eq!(app.get_cache("strava").status, 503);
}

#[test]
fn tampered_data_with_valid_json_is_never_served() {
    let mut app = spawn_app();
    let put = app.put_ok("strava", r#"{"n": 12345}"#);
    app.restart();
    let path = app.cache_file("strava");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("12345").count(), 1, "the envelope holds the data once: {text}");
    let tampered = text.replace("12345", "12346");
    serde_json::from_str::<Value>(&tampered).expect("the tampered file is still valid JSON");
    fs::write(&path, tampered).unwrap();

    let r = app.get_cache("strava");
    assert!(!r.body.contains("12346"), "tampered data served: {r:?}");
    assert_eq!(r.status, 503, "{r:?}");
    assert_moved_aside(&app);
    assert_corruption_logged(&app);

    // The next save replaces it, with a version above the lost one.
    let next = app.put_ok("strava", r#"{"n": 1}"#);
    assert!(
        next.etag_version().expect("ETag") > put.etag_version().expect("ETag"),
        "version went back after corruption: {next:?} vs {put:?}"
    );
    assert_eq!(app.get_cache("strava").body, r#"{"n":1}"#);
}

#[test]
fn file_corrupted_while_stopped_is_never_served() {
    let mut app = spawn_app();
    let put = app.put_ok("strava", r#"{"n": 12345}"#);
    app.stop();
    let path = app.cache_file("strava");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("12345", "54321")).unwrap();
    app.start_again();

    let r = app.get_cache("strava");
    assert!(!r.body.contains("54321"), "tampered data served: {r:?}");
    assert_eq!(r.status, 503, "{r:?}");
    // The answer says why, and that retrying alone will not help.
    assert_eq!(r.assert_json_error(), "no_data");
    let why = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("corrupt") && why.contains("retrying will not help"), "{why}");
    assert_moved_aside(&app);
    assert_corruption_logged(&app);

    // A new version is above the file's; a corrupt file's version must not be
    // handed out again (clients may hold its ETag).
    let next = app.put_ok("strava", r#"{"n": 2}"#);
    assert!(
        next.etag_version().expect("ETag") > put.etag_version().expect("ETag"),
        "version reused after a corrupt file was found at startup: {} after {}",
        next.etag_version().expect("ETag"),
        put.etag_version().expect("ETag")
    );
    // Once saved again, nothing is said about the old corruption.
    app.delete_cache("strava");
    let gone = app.get_cache("strava");
    assert!(!gone.json()["error"].as_str().unwrap_or_default().contains("corrupt"), "{gone:?}");
}

#[test]
fn truncated_file_is_never_served() {
    let mut app = spawn_app();
    app.put_ok("strava", r#"{"activities": [1, 2, 3]}"#);
    app.restart();
    let path = app.cache_file("strava");
    let text = fs::read(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    let r = app.get_cache("strava");
    assert_eq!(r.status, 503, "{r:?}");
    assert_moved_aside(&app);
}
