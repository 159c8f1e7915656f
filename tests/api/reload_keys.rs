//! SIGHUP never silently ignores a key: the real binary is reloaded once per
//! configuration key with that key changed, and each change must be named in a log
//! line, as applied or as needing a restart. A few applied keys are also checked by
//! their effect.

use crate::helpers::new_app;
use crate::security_support::{count_messages, reload};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::every_key::{edited, CHANGES, EVERY_KEY};
use tiercache_testkit::Daemon;

/// The shared fixture, plus what only this test needs: a cache whose source takes a
/// second.
const SLOW: &str = r#"
[[caches]]
name = "slow"
source = { kind = "command", argv = ["sh", "-c", "sleep 1; echo '[2]'"], timeout = "10s" }
"#;

/// The fixture for the daemon in `dir` on `port`, with `path` set to `value`.
fn config(dir: &Path, port: u16, edit: Option<(&str, &str)>) -> String {
    let fill = |text: &str| text.replace("PORT", &port.to_string()).replace("DIR", &dir.display().to_string());
    let text = fill(&format!("{EVERY_KEY}{SLOW}"));
    let Some((path, value)) = edit else { return text };
    edited(&text, path, Some(&fill(value)))
}

fn start() -> Daemon {
    let mut app = new_app(crate::helpers::Options::new());
    for (name, text) in [("one", "first\n"), ("two", "second\n"), ("schema.json", "{}")] {
        std::fs::write(app.dir().join(name), text).unwrap();
    }
    app.set_config(config(app.dir(), app.port(), None));
    app.start_again();
    app
}

/// The `keys` of the log lines with message `text` (each line's `keys` is a JSON array).
fn keys_in(lines: &[Value], text: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| message(l) == text)
        .flat_map(|l| {
            let keys = l["keys"].as_array().unwrap_or_else(|| panic!("keys is not a JSON array: {l}"));
            keys.iter().map(move |k| k.as_str().unwrap_or_else(|| panic!("a key that is not text: {l}")).to_owned())
        })
        .collect()
}

#[test]
fn every_changed_key_is_named_as_applied_or_needing_a_restart() {
    let mut app = start();
    let changes: Vec<_> = CHANGES.iter().filter(|c| c.daemon).collect();
    for change in &changes {
        let (path, value, key) = (change.path, change.value, change.shows_as);
        let before = app.log_lines().len();
        app.set_config(config(app.dir(), app.port(), Some((path, value))));
        assert!(reload(&app), "{path} = {value}: the reload was rejected:\n{}", app.stdout());
        let lines = app.log_lines().split_off(before);
        let applied = keys_in(&lines, "configuration change applied").iter().any(|k| k == key);
        let restart = keys_in(&lines, "configuration change needs a restart").iter().any(|k| k == key);
        assert!(applied || restart, "{path}: {key} not named in any log line: {lines:#?}");
        assert_eq!((applied, restart), (!change.restart, change.restart), "{path}: {key}: {lines:#?}");
    }
    // Back to the start: every key changed above is reported again, nothing else.
    app.set_config(config(app.dir(), app.port(), None));
    assert!(reload(&app));
    assert!(count_messages(&app, "configuration reloaded") > changes.len());
}

#[test]
fn applied_keys_take_effect_without_a_restart() {
    let mut app = start();
    let pid = app.pid();
    let body = format!("[\"{}\"]", "x".repeat(2000));
    app.put_ok("plain", &body);

    // api.max_body: a smaller limit refuses what was accepted.
    app.set_config(config(app.dir(), app.port(), Some(("api.max_body", r#""1KiB""#))));
    assert!(reload(&app));
    assert_eq!(app.put_json("plain", &body).status, 413);

    // refresh.emergency = false: an empty cache is not fetched for a reader.
    app.set_config(config(app.dir(), app.port(), Some(("refresh.emergency", "false"))));
    assert!(reload(&app));
    let r = app.get_cache("cmd");
    assert_eq!((r.status, r.json()["code"].clone()), (503, Value::from("no_data")), "{r:?}");
    app.set_config(config(app.dir(), app.port(), None));
    assert!(reload(&app));
    assert_eq!(app.get_cache("cmd").status, 200, "the emergency refresh is back");

    // refresh.fetch_timeout: the slow command (1 s) no longer fits.
    app.set_config(config(app.dir(), app.port(), Some(("refresh.fetch_timeout", r#""200ms""#))));
    assert!(reload(&app));
    let asked = Instant::now();
    let r = app.get_cache("slow");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(asked.elapsed() < Duration::from_millis(900), "the fetch ran {:?}", asked.elapsed());
    assert_eq!(app.pid(), pid, "no restart");
}
