//! A document that fails its cache's JSON Schema is corrupt wherever it comes from: a
//! file written before the schema existed is not served, and neither is a refresh
//! result that fails it (the schema is checked on every load from file or Postgres).

use crate::helpers::*;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"{"type": "object", "required": ["total"]}"#;

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_file_that_fails_a_new_schema_is_not_served() {
    let mut app = spawn_app_with(Options::new().caches(&["totals"]).env("CACHE_TTL_SECONDS", "1"));
    app.put_ok("totals", r#"{"other": 1}"#);
    std::fs::write(app.dir().join("totals.schema.json"), SCHEMA).unwrap();
    let with_schema = Options::new().caches(&["totals"]).tables("");
    let text = with_schema
        .config_text()
        .replace("[[caches]]\nname = \"totals\"\n", "[[caches]]\nname = \"totals\"\nschema = \"totals.schema.json\"\n");
    assert!(text.contains("schema ="), "{text}");
    app.set_config(text);
    app.signal(Signal::SIGHUP);
    wait_for("the reload", || app.stdout().contains("configuration reloaded"));
    // Once memory's copy expires, the file is read again and refused.
    wait_for("the file to be refused", || app.get_cache("totals").status == 503);
    assert!(app.stdout().contains("fails the cache's schema"), "{}", app.stdout());
    // A conforming save is served again.
    app.put_ok("totals", r#"{"total": "12.50"}"#);
    assert_eq!(app.get_cache("totals").status, 200);
}

#[test]
fn a_refresh_result_that_fails_the_schema_is_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("s.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    let app = spawn_app_with(Options::new().caches(&[]).tables(&format!(
        "[[caches]]\nname = \"feed\"\nrefresh_every = \"1h\"\nschema = {schema:?}\n[caches.source]\nkind = \"command\"\n\
         argv = [\"sh\", \"-c\", \"echo '{{\\\"wrong\\\": 1}}'\"]\n"
    )));
    wait_for("the refusal", || app.stdout().contains("fails the cache's schema"));
    let r = app.get_cache("feed");
    assert_eq!(r.status, 503, "nothing valid to serve");
    assert!(app.files_in("caches").is_empty(), "nothing was saved");
}
