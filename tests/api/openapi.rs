//! `GET /v1/openapi.json`: `docs/openapi.yaml` as JSON, served without a token even when
//! tokens are configured, while every other `/v1/` path still needs one.

use crate::helpers::Options;
use crate::security_support::start_with_files;
use serde_json::Value;
use tiercache_testkit::Daemon;

const WRITER: &str = "wr-3c1f9e7a5b2d4c6e8f0a";

fn app_with_tokens() -> Daemon {
    let tokens = format!("read:rd-7a2c4e6f8b1d3f5a7c9e\nwrite:{WRITER}\n");
    start_with_files(Options::new().api("tokens_file = \"tokens\""), &[("tokens", &tokens)])
}

#[test]
fn the_document_needs_no_token_and_is_docs_openapi_yaml() {
    let app = app_with_tokens();
    let r = app.get("/v1/openapi.json", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")), "{r:?}");
    let served = r.json();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let written: Value = serde_yaml_ng::from_str(&file).expect("docs/openapi.yaml parses");
    assert_eq!(served, written, "the served document is docs/openapi.yaml");
    assert_eq!(served["openapi"], "3.1.0");
    // A token does not hurt either.
    let r = app.get("/v1/openapi.json", &[("Authorization", &format!("Bearer {WRITER}"))]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn only_the_document_is_open() {
    let app = app_with_tokens();
    for path in ["/v1/caches", "/v1/caches/strava", "/v1/openapi.json/x", "/v1/openapi.yaml", "/v1/openapi.jso"] {
        let r = app.get(path, &[]);
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert_eq!(r.assert_json_error(), "unauthorized", "{path}");
    }
    // The path is open, but only GET is routed.
    let r = app.request("POST", "/v1/openapi.json", None, &[]);
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.assert_json_error(), "method_not_allowed");
}
