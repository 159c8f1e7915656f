//! Every stdout line is one flat JSON object with the documented field names at the top level.

use crate::helpers::{new_app, spawn_app, Options};
use crate::util::duplicate_top_level_keys;
use nix::sys::signal::Signal;
use serde_json::Value;
use tiercache_testkit::daemon::message;
use tiercache_testkit::daemon::EXIT_TIMEOUT;

const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// Checks every stdout line of the app's last run; returns how many there were.
fn assert_flat_json_lines(stdout: &str) -> usize {
    let mut lines = 0;
    for line in stdout.lines() {
        lines += 1;
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
        let ts = obj.get("timestamp").and_then(Value::as_str).unwrap_or_else(|| panic!("no timestamp: {line}"));
        chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("timestamp {ts:?}: {e}"));
        let level = obj.get("level").and_then(Value::as_str).unwrap_or_else(|| panic!("no level: {line}"));
        assert!(LEVELS.contains(&level), "level {level:?}: {line}");
        assert!(obj.get("target").and_then(Value::as_str).is_some(), "no target: {line}");
        assert!(obj.get("message").and_then(Value::as_str).is_some(), "no message: {line}");
        for nested in ["fields", "span", "spans"] {
            assert!(!obj.contains_key(nested), "nested {nested:?}: {line}");
        }
        let dups = duplicate_top_level_keys(line);
        assert!(dups.is_empty(), "keys {dups:?} appear twice (a field shadows a standard one): {line}");
    }
    lines
}

#[test]
fn every_stdout_line_is_a_flat_json_object() {
    let mut app = spawn_app();
    let put = app.put_ok("strava", r#"{"a": 1}"#).json();
    assert_eq!(app.get_cache("strava").status, 200);
    assert_eq!(app.get_cache("fundraising").status, 503);
    assert_eq!(app.get_cache("nosuch").status, 404);
    app.signal(Signal::SIGUSR2);
    app.wait_for_message("status snapshot");
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(EXIT_TIMEOUT), Some(0));

    let stdout = app.stdout();
    let lines = assert_flat_json_lines(&stdout);
    assert!(lines >= 3, "too few log lines:\n{stdout}");

    let saved = app
        .log_lines()
        .into_iter()
        .find(|l| message(l) == "saved")
        .unwrap_or_else(|| panic!("no \"saved\" line:\n{stdout}"));
    assert_eq!(saved["cache"], "strava", "{saved}");
    assert_eq!(saved["version"], put["version"], "{saved}");
    assert_eq!(saved["level"], "INFO");
}

#[test]
fn reload_lines_are_flat_json_without_duplicate_keys() {
    let mut app = spawn_app();
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    // A rejected reload too.
    let good = std::fs::read_to_string(app.config_path()).unwrap();
    app.set_config(format!("frobnicate = 1\n{good}"));
    app.signal(Signal::SIGHUP);
    app.wait_for_message("reload rejected");
    app.stop();
    assert_flat_json_lines(&app.stdout());
}

#[test]
fn pretty_format_is_not_json() {
    // `log.format` is fixed to json by the helper; write a pretty config by hand.
    let mut app = new_app(Options::new());
    let text = std::fs::read_to_string(app.config_path()).unwrap().replace("format = \"json\"", "format = \"pretty\"");
    app.set_config(text);
    app.start_again();
    app.put_ok("strava", "[1]");
    app.stop();
    let stdout = app.stdout();
    assert!(stdout.contains("saved"), "{stdout}");
    assert!(stdout.lines().all(|l| serde_json::from_str::<Value>(l).is_err()), "{stdout}");
}
