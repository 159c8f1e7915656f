//! `If-None-Match` (304) and `If-Match` (412).

use crate::helpers::spawn_app;

#[test]
fn if_none_match_with_the_current_etag_is_304() {
    let app = spawn_app();
    let etag = app.put_ok("strava", r#"{"a": 1}"#).header("etag").unwrap().to_owned();
    let r = app.get("/v1/caches/strava", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty(), "a 304 has no body: {:?}", r.body);
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    // One of several tags, and the wildcard.
    let r = app.get("/v1/caches/strava", &[("If-None-Match", &format!("\"1-0000000000000000\", {etag}"))]);
    assert_eq!(r.status, 304);
    assert_eq!(app.get("/v1/caches/strava", &[("If-None-Match", "*")]).status, 304);

    // A stale tag gets the document.
    let new_etag = app.put_ok("strava", r#"{"a": 2}"#).header("etag").unwrap().to_owned();
    let r = app.get("/v1/caches/strava", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"a":2}"#);
    assert_eq!(r.header("etag"), Some(new_etag.as_str()));

    // The three 304s are counted as such (and as reads); the 200s are not.
    assert_eq!(app.metric("tiercache_reads_not_modified_total{cache=\"strava\"}"), Some(3.0));
    assert_eq!(app.metric("tiercache_reads_not_modified_total{cache=\"fundraising\"}"), Some(0.0));
}

#[test]
fn if_match_mismatch_is_412_and_changes_nothing() {
    let app = spawn_app();
    let first = app.put_ok("strava", r#"{"a": 1}"#);
    let etag = first.header("etag").unwrap().to_owned();
    let wrong = format!("\"{}-0123456789abcdef\"", first.etag_version().expect("ETag"));
    let r = app.put("/v1/caches/strava", br#"{"a": 2}"#, &[("Content-Type", "application/json"), ("If-Match", &wrong)]);
    assert_eq!(r.status, 412, "{r:?}");
    r.assert_json_error();
    let now = app.get_cache("strava");
    assert_eq!(now.body, r#"{"a":1}"#);
    assert_eq!(now.header("etag"), Some(etag.as_str()));

    // The current tag lets the save through.
    let r = app.put("/v1/caches/strava", br#"{"a": 3}"#, &[("Content-Type", "application/json"), ("If-Match", &etag)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.etag_version().expect("ETag") > first.etag_version().expect("ETag"));
    // ...and the old one is now stale.
    let r = app.put("/v1/caches/strava", br#"{"a": 4}"#, &[("Content-Type", "application/json"), ("If-Match", &etag)]);
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(app.get_cache("strava").body, r#"{"a":3}"#);
}

#[test]
fn if_match_star_needs_an_existing_document() {
    let app = spawn_app();
    let star = [("Content-Type", "application/json"), ("If-Match", "*")];
    let r = app.put("/v1/caches/strava", b"[1]", &star);
    assert_eq!(r.status, 412, "If-Match: * on an empty cache: {r:?}");
    r.assert_json_error();
    assert_eq!(app.get_cache("strava").status, 503, "the refused save must not be stored");

    app.put_ok("strava", "[2]");
    let r = app.put("/v1/caches/strava", b"[3]", &star);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(app.get_cache("strava").body, "[3]");
}

#[test]
fn if_match_on_an_empty_cache_is_412() {
    let app = spawn_app();
    let r = app.put(
        "/v1/caches/strava",
        b"[1]",
        &[("Content-Type", "application/json"), ("If-Match", "\"1-0123456789abcdef\"")],
    );
    assert_eq!(r.status, 412, "{r:?}");
}
