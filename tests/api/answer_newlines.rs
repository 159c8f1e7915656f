//! JSON answers about caches end with a newline (a shell prompt after `curl` stays on
//! its own line); the document itself is served as its canonical bytes, unchanged.

use crate::helpers::spawn_app;

#[test]
fn meta_list_saved_and_error_answers_end_with_a_newline_but_the_document_does_not() {
    let app = spawn_app();
    let saved = app.put_ok("strava", r#"{"b": 2, "a": 1}"#);
    let doc = app.get_cache("strava");
    assert_eq!(doc.body, r#"{"a":1,"b":2}"#, "the canonical bytes, nothing added");
    for (what, r) in [
        ("saved", saved),
        ("meta", app.get("/v1/caches/strava/meta", &[])),
        ("list", app.get("/v1/caches", &[])),
        ("not found", app.get_cache("nosuch")),
        ("bad input", app.put_json("strava", "{not json")),
        ("no data", app.get_cache("fundraising")),
    ] {
        assert!(r.body.ends_with("}\n") && !r.body.ends_with("\n\n"), "{what}: {:?}", r.body);
        let _: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}
