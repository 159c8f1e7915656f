//! PUT then GET, meta, the list, the tier header across a restart, an empty cache.

use crate::helpers::{spawn_app, spawn_app_with, Options};
use serde_json::Value;
use tiercache_testkit::http::parse_etag;

const META_KEYS: &[&str] = &[
    "version",
    "checksum",
    "size",
    "last_fetch",
    "last_rich_fetch",
    "saved_at",
    "tier",
    "stale",
    "next_refresh_at",
    "postgres_synced",
];

fn assert_checksum(checksum: &str) {
    let hex = checksum.strip_prefix("sha256:").unwrap_or_else(|| panic!("checksum {checksum:?}"));
    assert_eq!(hex.len(), 64, "checksum {checksum:?}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "checksum {checksum:?}");
}

fn rfc3339(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

#[test]
fn put_answers_with_version_checksum_and_etag() {
    let app = spawn_app();
    let before = chrono::Utc::now();
    let r = app.put_ok("strava", r#"{"b": 1, "a": [1.0, 2]}"#);
    let body = r.json();
    assert_eq!(body["name"], "strava");
    let version = body["version"].as_u64().expect("version is a number");
    assert!(version >= 1);
    let checksum = body["checksum"].as_str().expect("checksum").to_owned();
    assert_checksum(&checksum);
    let saved_at = rfc3339(&body["saved_at"]);
    assert!(saved_at >= before - chrono::Duration::seconds(1), "saved_at {saved_at} before the PUT");
    let (etag_version, etag_hex) = parse_etag(r.header("etag").expect("ETag"));
    assert_eq!(etag_version, version);
    assert_eq!(etag_hex, checksum["sha256:".len().."sha256:".len() + 16]);
}

#[test]
fn get_serves_the_canonical_document_from_memory() {
    let app = spawn_app();
    let put = app.put_ok("strava", r#"{"b": 1, "a": [1.0, 2]}"#);
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, r#"{"a":[1,2],"b":1}"#);
    assert_eq!(r.header("etag"), put.header("etag"));
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "{r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("memory"));
    let age: u64 = r.header("age").expect("Age").parse().expect("Age is a number of seconds");
    assert!(age < 60, "Age {age}");
    let last_modified = r.header("last-modified").expect("Last-Modified");
    assert!(last_modified.ends_with(" GMT"), "Last-Modified {last_modified:?} is not an HTTP date");

    // Nested objects, unicode and numbers are normalised too.
    app.put_ok("strava", r#"{ "z": {"y": 2, "x": [true, null, "é"]}, "e": 1e2, "m": -0.5 }"#);
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200);
    let reparsed: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(reparsed["z"]["x"][2], "é");
    assert!(!r.body.contains(' '), "canonical form has no white space: {}", r.body);
    let keys: Vec<&str> = reparsed.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["e", "m", "z"]);
    assert!(r.body.starts_with(r#"{"e":"#) && r.body.contains(r#""z":{"x":[true,null,"é"],"y":2}"#), "{}", r.body);
}

#[test]
fn versions_strictly_increase() {
    let app = spawn_app();
    let mut last = 0;
    let mut etags = Vec::new();
    for i in 0..5 {
        let r = app.put_ok("strava", &format!(r#"{{"n": {}}}"#, i % 2));
        let v = r.json()["version"].as_u64().unwrap();
        assert!(v > last, "version {v} after {last}");
        assert_eq!(r.etag_version().expect("ETag"), v);
        etags.push(r.header("etag").unwrap().to_owned());
        last = v;
    }
    // Same content, different versions: different ETags.
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 5);
    assert_eq!(app.get_cache("strava").etag_version().expect("ETag"), last);
}

#[test]
fn list_shows_every_configured_cache_with_its_meta() {
    let app = spawn_app();
    let put = app.put_ok("strava", r#"{"activities": []}"#).json();
    let r = app.get("/v1/caches", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let list = r.json();
    let caches = list["caches"].as_array().unwrap_or_else(|| panic!("no caches array: {list}"));
    let mut names: Vec<&str> = caches.iter().map(|c| c["name"].as_str().expect("name")).collect();
    names.sort_unstable();
    assert_eq!(names, ["fundraising", "strava"]);
    for cache in caches {
        for key in META_KEYS {
            assert!(cache.get(key).is_some(), "{key} missing in {cache}");
        }
    }
    let strava = caches.iter().find(|c| c["name"] == "strava").unwrap();
    assert_eq!(strava["version"], put["version"]);
    assert_eq!(strava["checksum"], put["checksum"]);
}

#[test]
fn meta_describes_the_saved_document() {
    let app = spawn_app();
    let put = app.put_ok("strava", r#"{"b": 1, "a": [1.0, 2]}"#).json();
    let r = app.get("/v1/caches/strava/meta", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let meta = r.json();
    for key in META_KEYS {
        assert!(meta.get(key).is_some(), "{key} missing in {meta}");
    }
    assert_eq!(meta["version"], put["version"]);
    assert_eq!(meta["checksum"], put["checksum"]);
    assert_eq!(meta["size"].as_u64(), Some(r#"{"a":[1,2],"b":1}"#.len() as u64));
    assert_eq!(rfc3339(&meta["saved_at"]), rfc3339(&put["saved_at"]));
    // The last fetch of a PUT is its save time; strava refreshes every 6 h by default.
    let last_fetch = rfc3339(&meta["last_fetch"]);
    assert_eq!(last_fetch, rfc3339(&put["saved_at"]));
    assert_eq!(rfc3339(&meta["next_refresh_at"]), last_fetch + chrono::Duration::hours(6));
    assert_eq!(meta["stale"], false);
    assert_eq!(meta["tier"], "memory");
}

#[test]
fn restart_serves_from_file_then_memory() {
    let mut app = spawn_app();
    let put = app.put_ok("strava", r#"{"b": 1, "a": [1.0, 2]}"#);
    app.put_ok("fundraising", r#"{"total": "12.50"}"#);
    app.restart();
    let first = app.get_cache("strava");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-cache-tier"), Some("file"));
    assert_eq!(first.body, r#"{"a":[1,2],"b":1}"#);
    assert_eq!(first.header("etag"), put.header("etag"));
    let second = app.get_cache("strava");
    assert_eq!(second.header("x-cache-tier"), Some("memory"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), put.header("etag"));
    assert_eq!(app.get_cache("fundraising").body, r#"{"total":"12.50"}"#);
    // Versions keep increasing across restarts.
    let next = app.put_ok("strava", "{}");
    assert!(next.etag_version().expect("ETag") > put.etag_version().expect("ETag"));
}

#[test]
fn empty_configured_cache_is_503_with_retry_after() {
    let app = spawn_app();
    let r = app.get_cache("fundraising");
    assert_eq!(r.status, 503, "{r:?}");
    let retry_after: u64 =
        r.header("retry-after").expect("Retry-After").parse().expect("Retry-After is a number of seconds");
    assert!(retry_after > 0);
    r.assert_json_error();
}

#[test]
fn health_and_metrics() {
    let app = spawn_app();
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert_eq!(app.get("/readyz", &[]).status, 200);
    app.put_ok("strava", "[1]");
    assert_eq!(app.get_cache("strava").status, 200);
    let metrics = app.metrics();
    assert!(metrics.contains(r#"tiercache_reads_total{cache="strava",tier="memory"} 1"#), "{metrics}");
    assert!(metrics.contains("tiercache_read_duration_seconds"), "{metrics}");
    assert!(metrics.contains(r#"tiercache_saves_total{cache="strava",result="ok"} 1"#), "{metrics}");
    assert!(metrics.contains("tiercache_actor_restarts"), "{metrics}");
    // Every actor's series exists from the start, at zero.
    for line in metrics.lines().filter(|l| l.starts_with("tiercache_actor_restarts_total{")) {
        assert!(line.ends_with(" 0"), "restarts without a failure: {line}");
    }
    assert!(metrics.contains(r#"tiercache_actor_restarts_total{actor="file"} 0"#), "{metrics}");
}

#[test]
fn unix_socket_listener_answers() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_with(Options::new().listen("unix:api.sock"));
    let socket = app.dir().join("api.sock");
    let mode = std::fs::metadata(&socket).expect("socket exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    app.put_ok("strava", r#"{"via": "tcp"}"#);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect to the socket");
    stream.write_all(b"GET /v1/caches/strava HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"via":"tcp"}"#), "{answer}");
}

#[test]
fn expired_memory_copy_is_read_again_from_the_file() {
    // The legacy variable for `memory.ttl`.
    let app = spawn_app_with(Options::new().env("CACHE_TTL_SECONDS", "1"));
    app.put_ok("strava", "[1]");
    assert_eq!(app.get_cache("strava").header("x-cache-tier"), Some("memory"));
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let r = app.get_cache("strava");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache-tier"), Some("file"), "{r:?}");
    assert_eq!(r.body, "[1]");
    assert_eq!(app.get_cache("strava").header("x-cache-tier"), Some("memory"));
}

#[test]
fn data_past_its_schedule_is_served_as_stale() {
    let app = spawn_app_with(Options::new().tables("[[caches]]\nname = \"quick\"\nrefresh_every = \"1s\""));
    app.put_ok("quick", "[1]");
    let meta = app.get("/v1/caches/quick/meta", &[]).json();
    assert_eq!(meta["stale"], false, "{meta}");
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let r = app.get_cache("quick");
    assert_eq!(r.status, 200, "stale data is still served: {r:?}");
    assert_eq!(r.header("x-cache-tier"), Some("stale"));
    assert_eq!(r.body, "[1]");
    let meta = app.get("/v1/caches/quick/meta", &[]).json();
    assert_eq!(meta["stale"], true, "{meta}");
    assert_eq!(meta["tier"], "stale", "{meta}");
}

#[test]
fn last_modified_is_the_last_fetch() {
    let app = spawn_app();
    app.put_ok("strava", "[1]");
    let r = app.get_cache("strava");
    let last_modified = chrono::DateTime::parse_from_rfc2822(r.header("last-modified").unwrap())
        .unwrap_or_else(|e| panic!("Last-Modified {:?}: {e}", r.header("last-modified")));
    let meta = app.get("/v1/caches/strava/meta", &[]).json();
    let last_fetch = rfc3339(&meta["last_fetch"]);
    assert_eq!(last_modified.timestamp(), last_fetch.timestamp(), "HTTP dates have whole seconds");
}
