//! Input hardening on the save path: 413 before buffering (declared or chunked), 415,
//! 400 for bad or too deeply nested JSON, 422 for a document that fails its cache's
//! JSON Schema (compiled at startup, exit 78 when unusable, reloaded on SIGHUP).

use crate::helpers::{new_app, spawn_app_with, Options};
use crate::security_support::{assert_error_body, raw_tcp, reload, start_with_files, write_file};
use tiercache_testkit::Daemon;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["timestamp", "activities"],
  "properties": {
    "timestamp": {"type": "string"},
    "activities": {"type": "array", "items": {"type": "object", "required": ["id"],
                   "properties": {"id": {"type": "integer"}}}}
  }
}"#;

fn typed_app() -> Daemon {
    start_with_files(
        Options::new()
            .api("max_body = \"8KiB\"")
            .tables("[[caches]]\nname = \"typed\"\nschema = \"typed.schema.json\"\n[[caches]]\nname = \"free\""),
        &[("typed.schema.json", SCHEMA)],
    )
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn security_every_refusal_of_a_put_is_a_json_error() {
    let app = typed_app();
    let json = ("Content-Type", "application/json");
    // 415: not application/json.
    for ct in ["text/plain", "application/jsonx", "application/x-www-form-urlencoded", "multipart/form-data"] {
        let r = app.put("/v1/caches/free", b"{}", &[("Content-Type", ct)]);
        assert_eq!(r.status, 415, "{ct}: {r:?}");
        r.assert_json_error();
    }
    // 413: declared and chunked.
    let big = format!("[\"{}\"]", "x".repeat(9000));
    let r = app.put("/v1/caches/free", big.as_bytes(), &[json]);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.assert_json_error(), "too_large");
    let mut chunked = b"PUT /v1/caches/free HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("400\r\n{}\r\n", " ".repeat(0x400)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_tcp(app.port(), &chunked).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_error_body(&r.body, "too_large");
    // 400: not JSON, and too deep (refused before parsing).
    let r = app.put("/v1/caches/free", b"{\"a\":", &[json]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.assert_json_error(), "invalid_json");
    for depth in [65, 129, 4000] {
        let r = app.put("/v1/caches/free", nested(depth).as_bytes(), &[json]);
        assert_eq!(r.status, 400, "depth {depth}: {r:?}");
        assert_eq!(r.assert_json_error(), "too_deep", "depth {depth}");
    }
    let r = app.put("/v1/caches/free", nested(64).as_bytes(), &[json]);
    assert_eq!(r.status, 200, "64 levels are fine: {r:?}");
    // Brackets inside strings are not nesting.
    let r = app.put_json("free", &format!("{{\"s\":\"{}\"}}", "[".repeat(500)));
    assert_eq!(r.status, 200, "{r:?}");
    // 422: valid JSON that fails the schema, with the first problems listed.
    let r = app.put_json("typed", r#"{"timestamp": 5, "activities": [{"id": "x"}, {}]}"#);
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.assert_json_error(), "schema_mismatch");
    let errors = r.json()["errors"].as_array().cloned().unwrap_or_default();
    assert!((2..=5).contains(&errors.len()), "{errors:?}");
    assert!(errors.iter().any(|e| e.as_str().unwrap_or_default().starts_with("/timestamp")), "{errors:?}");
    assert_eq!(app.get_cache("typed").status, 503, "a refused document was stored");
    // A valid one is saved; another cache without a schema takes anything.
    let good = r#"{"timestamp": "2024-05-01T10:00:00Z", "activities": [{"id": 1}]}"#;
    assert_eq!(app.put_json("typed", good).status, 200);
    assert_eq!(app.put_json("free", "[\"anything\"]").status, 200);
    // Refusals never replace the stored document.
    assert_eq!(app.put_json("typed", "[]").status, 422);
    assert_eq!(app.get_cache("typed").json()["activities"][0]["id"], 1);
}

#[test]
fn security_schema_reloads_on_sighup() {
    let app = typed_app();
    let doc = r#"{"timestamp": "t", "activities": []}"#;
    assert_eq!(app.put_json("typed", doc).status, 200);
    write_file(&app, "typed.schema.json", r#"{"type": "object", "required": ["total"]}"#);
    assert!(reload(&app), "{}", app.stdout());
    assert_eq!(app.put_json("typed", doc).status, 422);
    assert_eq!(app.put_json("typed", r#"{"total": "1.00"}"#).status, 200);
    // An invalid schema is a rejected reload: the running one stays.
    write_file(&app, "typed.schema.json", r#"{"type": 12}"#);
    assert!(!reload(&app));
    assert!(app.stdout().lines().any(|l| l.contains("reload rejected") && l.contains("caches[0].schema")));
    assert_eq!(app.put_json("typed", doc).status, 422);
}

#[test]
fn security_unusable_schemas_exit_78_naming_the_cache() {
    let cases = [
        (None, "config error: caches[1].schema: cannot read"),
        (Some("{not json"), "config error: caches[1].schema: "),
        (Some(r#"{"type": "no-such-type"}"#), "config error: caches[1].schema: "),
        (Some(r#"{"$ref": "https://example.com/schema.json"}"#), "config error: caches[1].schema: "),
    ];
    for (schema, expected) in cases {
        let mut app =
            new_app(Options::new().caches(&["first"]).tables("[[caches]]\nname = \"second\"\nschema = \"s.json\""));
        if let Some(text) = schema {
            write_file(&app, "s.json", text);
        }
        let err = app.try_start().expect_err("started with an unusable schema");
        assert!(err.contains("exited with 78"), "{err}");
        assert!(app.stderr().starts_with(expected), "{schema:?}: {}", app.stderr());
        assert_eq!(app.stderr().trim().lines().count(), 1, "{}", app.stderr());
    }
}

#[test]
fn security_hostile_cache_names_are_404_before_any_path_is_built() {
    let app = spawn_app_with(Options::new());
    let long = "a".repeat(51);
    let names = [
        "..",
        "%2e%2e",
        "..%2Fstrava",
        "a%2Fb",
        "%2Fetc%2Fpasswd",
        "strava%00",
        "strava%2500",
        long.as_str(),
        "STRAVA",
        "str%C3%A1va",
        "%EF%BD%93trava",
        "%D1%95trava",
        "stra%E2%80%8Bva",
        "strava.json",
        "-strava",
    ];
    for name in names {
        for (method, suffix) in [("GET", ""), ("GET", "/meta"), ("PUT", ""), ("DELETE", ""), ("POST", "/refresh")] {
            let path = format!("/v1/caches/{name}{suffix}");
            let headers = [("Content-Type", "application/json")];
            let r = app.request(method, &path, (method == "PUT").then_some(&b"{}"[..]), &headers);
            assert!((400..500).contains(&r.status), "{method} {path}: {r:?}");
        }
    }
    let data: Vec<_> = app.files_in("caches");
    assert!(data.is_empty(), "files were created: {data:?}");
}
