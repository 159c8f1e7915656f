//! DELETE purges a cache; it stays gone across a restart; versions keep increasing.

use crate::helpers::spawn_app;

#[test]
fn delete_purges_and_stays_purged_across_a_restart() {
    let mut app = spawn_app();
    app.put_ok("strava", r#"{"n": 1}"#);
    let before = app.put_ok("strava", r#"{"n": 2}"#).etag_version().expect("ETag");
    assert_eq!(app.get_cache("strava").status, 200);

    let r = app.delete_cache("strava");
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.body.is_empty());
    let r = app.get_cache("strava");
    assert_eq!(r.status, 503, "{r:?}");
    r.assert_json_error();
    assert!(!app.cache_file("strava").exists(), "the file is still there");

    // The other cache is untouched.
    app.put_ok("fundraising", "[1]");

    app.restart();
    assert_eq!(app.get_cache("strava").status, 503, "a deleted cache came back after a restart");
    assert_eq!(app.get_cache("fundraising").body, "[1]");

    let after = app.put_ok("strava", r#"{"n": 3}"#).etag_version().expect("ETag");
    assert!(after > before, "version after delete {after} is not above {before}");
    assert_eq!(app.get_cache("strava").body, r#"{"n":3}"#);
}

#[test]
fn put_after_delete_without_restart_gets_a_higher_version() {
    let app = spawn_app();
    let before = app.put_ok("strava", "[1]").etag_version().expect("ETag");
    assert_eq!(app.delete_cache("strava").status, 204);
    let after = app.put_ok("strava", "[2]").etag_version().expect("ETag");
    assert!(after > before, "{after} <= {before}");
    assert_eq!(app.get_cache("strava").body, "[2]");
}

#[test]
fn delete_of_an_empty_cache_is_204_and_unknown_is_404() {
    let app = spawn_app();
    assert_eq!(app.delete_cache("fundraising").status, 204);
    let r = app.delete_cache("nosuchcache");
    assert_eq!(r.status, 404, "{r:?}");
    r.assert_json_error();
}
