//! Names that are not configured, or not valid names at all, are 404 and never touch
//! the file system; a method that a path of the API does not have is 405 with `Allow`.

use crate::helpers::{spawn_app, spawn_app_with, Options};

const INVALID: &[&str] = &[
    "nosuch",
    "Strava",
    "STRAVA",
    "strava.json",
    "strava%00",
    "..",
    "..%2f..%2fetc",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fevil",
    "caches%2fstrava",
    "str%20ava",
    "1strava",
    "_strava",
    "-strava",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // 51 characters
];

#[test]
fn unknown_and_invalid_names_are_404() {
    let app = spawn_app();
    for name in INVALID {
        let path = format!("/v1/caches/{name}");
        for (method, body) in [("GET", None), ("PUT", Some(&b"{}"[..])), ("DELETE", None)] {
            let r = app.request(method, &path, body, &[("Content-Type", "application/json")]);
            assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        }
        let r = app.get(&format!("/v1/caches/{name}/meta"), &[]);
        assert_eq!(r.status, 404, "GET {path}/meta: {r:?}");
    }
    // Nothing was created anywhere by those requests.
    let caches = app.files_in("caches");
    assert!(caches.is_empty(), "files in caches/: {caches:?}");
    for stray in ["evil.json", "etc.json", "data/evil.json", "data/etc.json"] {
        assert!(!app.dir().join(stray).exists(), "{stray} was created");
    }
}

#[test]
fn unknown_name_has_a_json_error() {
    let app = spawn_app();
    let r = app.get_cache("nosuch");
    assert_eq!(r.status, 404);
    r.assert_json_error();
    let r = app.put_json("Strava", "{}");
    assert_eq!(r.status, 404);
    r.assert_json_error();
}

#[test]
fn a_configured_name_of_50_characters_works() {
    let long = "a".repeat(50);
    let app = spawn_app_with(Options::new().caches(&[&long]));
    app.put_ok(&long, "[1]");
    assert_eq!(app.get_cache(&long).body, "[1]");
    // The built-in caches are replaced by the declared ones.
    assert_eq!(app.get_cache("strava").status, 404);
    assert_eq!(app.get_cache(&"a".repeat(51)).status, 404);
}

#[test]
fn a_method_a_path_does_not_have_is_405_with_allow() {
    let app = spawn_app();
    let cases: &[(&str, &str, &str)] = &[
        ("POST", "/v1/caches/strava", "GET, HEAD, PUT, DELETE"),
        ("PATCH", "/v1/caches/nosuch", "GET, HEAD, PUT, DELETE"),
        ("TRACE", "/healthz", "GET, HEAD"),
        ("DELETE", "/v1/caches", "GET, HEAD"),
        ("GET", "/v1/caches/strava/refresh", "POST"),
        ("PUT", "/v1/caches/strava/meta", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let r = app.request(method, path, Some(b"{}"), &[("Content-Type", "application/json")]);
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(r.assert_json_error(), "method_not_allowed", "{method} {path}");
        assert_eq!(r.header("allow"), Some(*allow), "{method} {path}");
    }
    // A path the API does not have stays 404, whatever the method.
    for method in ["GET", "POST"] {
        let r = app.request(method, "/v1/nothing", None, &[]);
        assert_eq!(r.status, 404, "{method}: {r:?}");
        assert_eq!(r.assert_json_error(), "not_found");
    }
}
