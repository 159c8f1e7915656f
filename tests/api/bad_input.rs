//! 400 bad JSON, 413 too large, 415 wrong content type; nothing is stored then.

use crate::helpers::{spawn_app, spawn_app_with, Options};
use tiercache_testkit::http::try_request;

#[test]
fn bad_json_is_400_with_a_json_error() {
    let app = spawn_app();
    for bad in [&b"{\"a\":"[..], b"", b"not json", b"{\"a\":1} trailing", b"{'a': 1}", b"\xff\xfe"] {
        let r = app.put("/v1/caches/strava", bad, &[("Content-Type", "application/json")]);
        assert_eq!(r.status, 400, "body {:?}: {r:?}", String::from_utf8_lossy(bad));
        r.assert_json_error();
    }
    assert_eq!(app.get_cache("strava").status, 503, "a refused body was stored");
}

#[test]
fn wrong_content_type_is_415() {
    let app = spawn_app();
    for headers in
        [&[][..], &[("Content-Type", "text/plain")], &[("Content-Type", "application/x-www-form-urlencoded")]]
    {
        let r = app.put("/v1/caches/strava", b"{}", headers);
        assert_eq!(r.status, 415, "{headers:?}: {r:?}");
        r.assert_json_error();
    }
    assert_eq!(app.get_cache("strava").status, 503, "a refused body was stored");
    // Parameters and case do not matter.
    let r = app.put("/v1/caches/strava", b"{}", &[("Content-Type", "Application/JSON; charset=utf-8")]);
    assert_eq!(r.status, 200, "{r:?}");
}

fn json_of_size(n: usize) -> String {
    // `{"x":"aaa..."}` of exactly n bytes.
    format!(r#"{{"x":"{}"}}"#, "a".repeat(n - 8))
}

#[test]
fn body_over_max_body_is_413() {
    let app = spawn_app_with(Options::new().api(r#"max_body = "1KiB""#));
    let r = app.put_json("strava", &json_of_size(1024));
    assert_eq!(r.status, 200, "exactly max_body is accepted: {r:?}");
    let r = app.put_json("strava", &json_of_size(4096));
    assert_eq!(r.status, 413, "{r:?}");
    r.assert_json_error();
    assert_eq!(app.get_cache("strava").body.len(), 1024, "the refused body replaced the stored one");
}

#[test]
fn body_over_max_body_without_content_length_is_413() {
    let app = spawn_app_with(Options::new().api(r#"max_body = "1KiB""#));
    // A chunked body: the limit must hold while reading, not only on Content-Length.
    let body = json_of_size(4096);
    let agent = ureq::AgentBuilder::new().build();
    let result = agent
        .put(&app.url("/v1/caches/strava"))
        .set("Content-Type", "application/json")
        .send(std::io::Cursor::new(body.into_bytes()));
    let status = match result {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 413);
    assert_eq!(app.get_cache("strava").status, 503);
}

#[test]
fn body_over_a_caches_max_size_is_413() {
    let app = spawn_app_with(
        Options::new()
            .api(r#"max_body = "1KiB""#)
            .tables("[[caches]]\nname = \"small\"\nmax_size = \"100B\"\n[[caches]]\nname = \"big\""),
    );
    let r = app.put_json("small", &json_of_size(200));
    assert_eq!(r.status, 413, "{r:?}");
    r.assert_json_error();
    assert_eq!(app.put_json("small", &json_of_size(100)).status, 200);
    assert_eq!(app.put_json("big", &json_of_size(200)).status, 200);
    assert_eq!(app.put_json("big", &json_of_size(2000)).status, 413, "max_body still applies");
    assert_eq!(app.get_cache("small").body.len(), 100);
}

#[test]
fn errors_do_not_break_the_next_request() {
    let app = spawn_app();
    let agent = ureq::AgentBuilder::new().build();
    let url = app.url("/v1/caches/strava");
    let r = try_request(&agent, "PUT", &url, Some(b"{"), &[("Content-Type", "application/json")]).unwrap();
    assert_eq!(r.status, 400);
    let r = try_request(&agent, "PUT", &url, Some(b"{}"), &[("Content-Type", "application/json")]).unwrap();
    assert_eq!(r.status, 200);
}
