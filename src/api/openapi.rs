//! `GET /v1/openapi.json`: `docs/openapi.yaml`, embedded in the binary and served as JSON.
//!
//! One file is the contract: the YAML is compiled in with `include_str!` and converted to
//! JSON once, when the API starts ([`document`] is forced by `bind`), so the served JSON
//! and the document in `docs/` cannot differ. A YAML crate (`serde_yaml_ng`, the kept
//! fork of `serde_yaml`, one more crate in the tree) costs less than a build script, a
//! second checked-in JSON copy and the test that would keep the two equal. The tests
//! below compare the document's operations with the router's table ([`super::endpoints`]).

use actix_web::http::header;
use actix_web::HttpResponse;
use std::sync::LazyLock;

/// The document as written.
const YAML: &str = include_str!("../../docs/openapi.yaml");

/// The document as JSON, converted once.
static JSON: LazyLock<String> = LazyLock::new(|| {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(YAML).unwrap_or_else(|e| panic!("docs/openapi.yaml is not valid YAML: {e}"));
    value.to_string()
});

/// The document as JSON text.
///
/// # Panics
/// When `docs/openapi.yaml` is not valid YAML, which the unit tests rule out.
pub fn document() -> &'static str {
    &JSON
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The methods an OpenAPI path item may hold.
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn parsed() -> Value {
        serde_json::from_str(document()).expect("the served document is JSON")
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("the document has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| ((*m).to_owned(), path.clone()))
            })
            .collect()
    }

    fn routed() -> BTreeSet<(String, String)> {
        let endpoints = super::super::endpoints();
        endpoints
            .iter()
            .flat_map(|e| e.methods().into_iter().map(|m| (m.as_str().to_ascii_lowercase(), e.path.to_owned())))
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let (routed, documented) = (routed(), documented(&parsed()));
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "routes missing from docs/openapi.yaml: {undocumented:?}");
        assert!(unrouted.is_empty(), "operations of docs/openapi.yaml without a route: {unrouted:?}");
        assert!(routed.contains(&("get".to_owned(), "/v1/openapi.json".to_owned())));
    }

    #[test]
    fn it_is_openapi_3_1_of_this_version() {
        let doc = parsed();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version follows Cargo.toml");
    }

    #[test]
    fn every_operation_declares_its_error_body_and_an_id() {
        let doc = parsed();
        for (method, path) in documented(&doc) {
            let op = &doc["paths"][&path][&method];
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
            if method == "head" {
                continue; // a HEAD answer has no body to declare
            }
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
                let schema = &response["content"]["application/json"]["schema"];
                let error =
                    response["$ref"].as_str().map(str::to_owned).or_else(|| schema["$ref"].as_str().map(str::to_owned));
                assert!(error.is_some(), "{method} {path} {status}: the JSON error body is not declared");
            }
        }
    }
}
