//! SIGHUP never silently ignores a key (issue 4): the real binary is reloaded once per
//! configuration key with that key changed, and each change must be named in a log
//! line, as applied or as needing a restart. A few applied keys are also checked by
//! their effect.

use crate::helpers::new_app;
use crate::security_support::{count_messages, reload};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::every_key::{edited, EVERY_KEY};
use tiercache_testkit::Daemon;

/// The shared fixture, plus what only this test needs: a cache whose source takes a
/// second.
const SLOW: &str = r#"
[[caches]]
name = "slow"
source = { kind = "command", argv = ["sh", "-c", "sleep 1; echo '[2]'"], timeout = "10s" }
"#;

/// The keys a reload does not apply.
const RESTART: &[&str] = &[
    "project",
    "data_dir",
    "log.format",
    "api.listen",
    "api.workers",
    "memory.ttl",
    "postgres.enabled",
    "postgres.statement_cache",
    "postgres.heads_poll_interval",
    "postgres.single_instance",
    "supervisor.max_restarts",
    "supervisor.restart_window",
];

/// (the key to change, as the log names it, new value). Renaming a cache is named as a
/// change of `caches`, replacing a source as a change of its kind.
const CASES: &[(&str, &str)] = &[
    ("project", r#""p2""#),
    ("data_dir", r#""data2""#),
    ("log.format", r#""pretty""#),
    ("log.level", r#""debug""#),
    ("api.listen", r#"["127.0.0.1:PORT", "127.0.0.1:9"]"#),
    ("api.max_body", r#""1MiB""#),
    ("api.allow_unauthenticated", "true"),
    ("api.allow", r#"["127.0.0.0/8"]"#),
    ("api.rate_limit_per_second", "1000"),
    ("api.rate_limit_burst", "1000"),
    ("api.workers", "3"),
    ("memory.ttl", r#""10m""#),
    ("postgres.enabled", "true"),
    ("postgres.url", r#""postgres://u@127.0.0.1:9/db2""#),
    ("postgres.password_file", r#""DIR/two""#),
    ("postgres.sslmode", r#""require""#),
    ("postgres.ssl_root_cert", r#""DIR/ca.pem""#),
    ("postgres.pool_size", "4"),
    ("postgres.statement_cache", "false"),
    ("postgres.connect_timeout", r#""3s""#),
    ("postgres.statement_timeout", r#""5s""#),
    ("postgres.heads_poll_interval", r#""5s""#),
    ("postgres.single_instance", "true"),
    ("retry.enabled", "false"),
    ("retry.initial_interval", r#""1s""#),
    ("retry.max_interval", r#""2m""#),
    ("retry.multiplier", "3.0"),
    ("retry.max_attempts", "3"),
    ("shutdown.graceful", "false"),
    ("shutdown.timeout", r#""5s""#),
    ("refresh.emergency", "false"),
    ("refresh.fetch_timeout", r#""5s""#),
    ("refresh.max_stale", r#""1h""#),
    ("refresh.jitter", r#""30s""#),
    ("supervisor.max_restarts", "9"),
    ("supervisor.restart_window", r#""2m""#),
    ("caches[plain].name", r#""other""#),
    ("caches[plain].refresh_every", r#""1h""#),
    ("caches[plain].rich_refresh_every", r#""2h""#),
    ("caches[plain].max_size", r#""1MiB""#),
    ("caches[plain].retention_days", "90"),
    ("caches[plain].schema", r#""DIR/schema.json""#),
    ("caches[strava].source.client_id", r#""2""#),
    ("caches[strava].source.client_secret", r#""b""#),
    ("caches[strava].source.refresh_token", r#""r2""#),
    ("caches[strava].source.base_url", r#""http://127.0.0.1:10""#),
    ("caches[strava].source.per_page", "50"),
    ("caches[strava].source.full_refresh_every", r#""12h""#),
    ("caches[strava-files].source.client_secret_file", r#""DIR/two""#),
    ("caches[strava-files].source.refresh_token_file", r#""DIR/two""#),
    ("caches[jg].source.app_id", r#""b""#),
    ("caches[jg].source.page_short_name", r#""other""#),
    ("caches[jg-file].source.app_id_file", r#""DIR/two""#),
    ("caches[web].source.url", r#""http://127.0.0.1:9/b""#),
    ("caches[web].source.headers", r#"{ x-key = "v2" }"#),
    ("caches[web].source.bearer_token", r#""t2""#),
    ("caches[web-file].source.bearer_token_file", r#""DIR/two""#),
    ("caches[cmd].source.argv", r#"["true"]"#),
    ("caches[cmd].source.timeout", r#""20s""#),
    ("caches[cmd].source", r#"{ kind = "http", url = "http://127.0.0.1:9/c" }"#),
];

/// The key the log names for a change of `path`.
fn named(path: &str) -> String {
    match path {
        "caches[plain].name" => "caches".into(),
        _ if path.ends_with("].source") => format!("{path}.kind"),
        _ => path.into(),
    }
}

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
    for (path, value) in CASES {
        let key = named(path);
        let before = app.log_lines().len();
        app.set_config(config(app.dir(), app.port(), Some((path, value))));
        assert!(reload(&app), "{path} = {value}: the reload was rejected:\n{}", app.stdout());
        let lines = app.log_lines().split_off(before);
        let applied = keys_in(&lines, "configuration change applied").contains(&key);
        let restart = keys_in(&lines, "configuration change needs a restart").contains(&key);
        let table_key = key.split_once("].").map_or(key.to_string(), |(_, k)| format!("caches.{k}"));
        let expected_restart = RESTART.contains(&table_key.as_str());
        assert!(applied || restart, "{path}: {key} not named in any log line: {lines:#?}");
        assert_eq!((applied, restart), (!expected_restart, expected_restart), "{path}: {key}: {lines:#?}");
    }
    // Back to the start: every key changed above is reported again, nothing else.
    app.set_config(config(app.dir(), app.port(), None));
    assert!(reload(&app));
    assert!(count_messages(&app, "configuration reloaded") > CASES.len());
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
