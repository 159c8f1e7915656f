//! `GET /v1/openapi.json`: docs/openapi.yaml made specific to the running configuration
//! (one path per configured cache, its JSON Schema as the document's body), served
//! without a token even when tokens are configured, while every other `/v1/` path still
//! needs one.

use crate::helpers::Options;
use crate::security_support::start_with_files;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tiercache_testkit::Daemon;

const WRITER: &str = "wr-3c1f9e7a5b2d4c6e8f0a";

fn app_with_tokens() -> Daemon {
    let tokens = format!("read:rd-7a2c4e6f8b1d3f5a7c9e\nwrite:{WRITER}\n");
    start_with_files(Options::new().api("tokens_file = \"tokens\""), &[("tokens", &tokens)])
}

fn written() -> Value {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&file).expect("docs/openapi.yaml parses")
}

fn served(app: &Daemon) -> Value {
    let r = app.get("/v1/openapi.json", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")), "{r:?}");
    r.json()
}

/// `{name}` paths of the written document, as `(template, path item)`.
fn templated(doc: &Value) -> Vec<(String, Value)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.contains("{name}"))
        .map(|(p, i)| (p.clone(), i.clone()))
        .collect()
}

#[test]
fn the_document_needs_no_token_and_is_docs_openapi_yaml_per_cache() {
    let app = app_with_tokens();
    let (served, written) = (served(&app), written());
    assert_eq!(served["openapi"], "3.1.0");
    // Everything but the cache paths (and the schemas they add) is the written document.
    for (path, item) in written["paths"].as_object().unwrap().iter().filter(|(p, _)| !p.contains("{name}")) {
        assert_eq!(&served["paths"][path], item, "{path}");
    }
    assert_eq!(served["components"]["responses"], written["components"]["responses"]);
    assert_eq!(served["components"]["schemas"], written["components"]["schemas"], "no cache has a schema here");
    // The built-in caches each have the `{name}` paths, with their own operation ids.
    for cache in ["strava", "fundraising"] {
        for (template, item) in templated(&written) {
            let path = template.replace("{name}", cache);
            let mine = &served["paths"][&path];
            assert!(mine.is_object(), "{path} is documented");
            for method in ["get", "put", "delete", "post"] {
                if let Some(id) = item[method]["operationId"].as_str() {
                    assert_eq!(mine[method]["operationId"], format!("{id}_{cache}"), "{method} {path}");
                }
            }
        }
    }
    assert!(served["paths"].as_object().unwrap().keys().all(|p| !p.contains('{')), "no templated path is served");
    // Each cache's schedule, for clients that judge a document read from the files.
    let schedule = |cache: &str| served["paths"][format!("/v1/caches/{cache}")]["x-tiercache"].clone();
    assert_eq!(schedule("strava"), json!({"cache": "strava", "refresh_every_seconds": 21600.0}));
    assert_eq!(schedule("fundraising"), json!({"cache": "fundraising", "refresh_every_seconds": 900.0}));
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

const TAGS: &str = r#"{"type": "array", "items": {"type": "string", "maxLength": 20}}"#;

const TOTALS: &str = r##"{"type": "object", "required": ["total"], "properties": {"total": {"$ref": "#/$defs/money"}},
  "$defs": {"money": {"type": "number", "minimum": 0}}}"##;

/// What the document says a cache's PUT takes, its local references followed.
fn put_body(doc: &Value, cache: &str) -> Value {
    let schema =
        &doc["paths"][format!("/v1/caches/{cache}")]["put"]["requestBody"]["content"]["application/json"]["schema"];
    match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).expect("the reference resolves").clone(),
        None => schema.clone(),
    }
}

#[test]
fn a_cache_with_a_schema_is_documented_with_it_and_a_reload_follows_the_configuration() {
    let caches = "[[caches]]\nname = \"fundraising\"\nschema = \"totals.json\"\n\n[[caches]]\nname = \"notes\"\n\n\
                  [[caches]]\nname = \"tags\"\nschema = \"tags.json\"\n";
    let files = [("totals.json", TOTALS), ("tags.json", TAGS)];
    let mut app = start_with_files(Options::new().tables(caches), &files);
    let doc = served(&app);
    let body = put_body(&doc, "fundraising");
    assert_eq!(body["type"], "object", "{body}");
    assert_eq!(body["required"], json!(["total"]));
    let money = body["properties"]["total"]["$ref"].as_str().expect("a reference");
    assert_eq!(doc.pointer(money.trim_start_matches('#')), Some(&json!({"type": "number", "minimum": 0})));
    let get_body = &doc["paths"]["/v1/caches/fundraising"]["get"]["responses"]["200"]["content"]["application/json"];
    assert_eq!(get_body["schema"]["$ref"], "#/components/schemas/Document_fundraising");
    // What the document refuses, the daemon refuses, and the other way round.
    let json_type = [("Content-Type", "application/json")];
    assert_eq!(app.put("/v1/caches/fundraising", b"null", &json_type).status, 422);
    assert_eq!(app.put("/v1/caches/fundraising", br#"{"total": 12.5}"#, &json_type).status, 200);
    // A schema that refers to nothing is the body as written.
    assert_eq!(put_body(&doc, "tags"), serde_json::from_str::<Value>(TAGS).unwrap());
    // A cache without a schema takes any JSON, `null` included.
    assert_eq!(put_body(&doc, "notes")["description"], "Any JSON value.");
    assert_eq!(app.put("/v1/caches/notes", b"null", &json_type).status, 200);
    // If-Match: the daemon's strong ETags; If-None-Match stays a plain string (weak
    // comparison: `W/` is fine there).
    let if_match = doc["paths"]["/v1/caches/notes"]["put"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "If-Match")
        .cloned()
        .expect("If-Match is documented");
    assert!(if_match["schema"]["pattern"].as_str().is_some_and(|p| p.contains("[0-9a-f]{16}")), "{if_match}");

    // A reload that adds a cache and drops the schema: the document follows.
    let config = std::fs::read_to_string(app.config_path()).unwrap();
    app.set_config(config.replace("schema = \"totals.json\"\n", "") + "\n[[caches]]\nname = \"extra\"\n");
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    let doc = served(&app);
    assert!(doc["paths"]["/v1/caches/extra"]["get"].is_object(), "the new cache is documented");
    assert_eq!(put_body(&doc, "fundraising")["description"], "Any JSON value.");
    assert!(doc["components"]["schemas"].get("Document_fundraising").is_none());
}
