//! SIGHUP never silently ignores a key (issue 4): the real binary is reloaded once per
//! configuration key with that key changed, and each change must be named in a log
//! line, as applied or as needing a restart. A few applied keys are also checked by
//! their effect.

use crate::helpers::new_app;
use crate::security_support::{count_messages, reload};
use serde_json::Value;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

/// Every key set, Postgres off (its keys are still compared), sources that never run
/// on their own (no schedule).
const BASE: &str = r#"
project = "p1"
data_dir = "data"
[log]
format = "json"
level = "info"
[api]
listen = ["127.0.0.1:PORT"]
max_body = "16MiB"
tokens_file = ""
allow_unauthenticated = false
allow = []
rate_limit_per_second = 0
rate_limit_burst = 0
tls_cert = ""
tls_key = ""
[memory]
ttl = "5m"
[postgres]
enabled = false
url = "postgres://u@127.0.0.1:9/db1"
password_file = "one"
sslmode = ""
ssl_root_cert = ""
pool_size = 8
statement_cache = true
connect_timeout = "5s"
statement_timeout = "15s"
[retry]
enabled = true
initial_interval = "500ms"
max_interval = "60s"
multiplier = 2.0
max_attempts = 20
[shutdown]
graceful = true
timeout = "30s"
[refresh]
emergency = true
fetch_timeout = "60s"
max_stale = ""
jitter = "0s"
[supervisor]
max_restarts = 5
restart_window = "60s"
[[caches]]
name = "plain"
refresh_every = "6h"
rich_refresh_every = "24h"
max_size = "16MiB"
retention_days = 30
schema = ""
[[caches]]
name = "strava"
source = { kind = "strava", client_id = "1", client_secret = "a", refresh_token = "r", base_url = "http://127.0.0.1:9", per_page = 100 }
[[caches]]
name = "jg"
source = { kind = "justgiving", app_id = "a", page_short_name = "page", base_url = "http://127.0.0.1:9" }
[[caches]]
name = "web"
source = { kind = "http", url = "http://127.0.0.1:9/a", headers = { x-key = "v1" }, bearer_token = "t1" }
[[caches]]
name = "cmd"
source = { kind = "command", argv = ["sh", "-c", "echo '[1]'"], timeout = "10s" }
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
    "memory.ttl",
    "postgres.enabled",
    "postgres.statement_cache",
    "supervisor.max_restarts",
    "supervisor.restart_window",
];

/// (where to change it, new value, the key the log names). Keys of a cache are named
/// `caches[NAME].KEY`; adding a cache changes `caches`.
const CASES: &[(&str, &str, &str)] = &[
    ("project", r#""p2""#, "project"),
    ("data_dir", r#""data2""#, "data_dir"),
    ("log.format", r#""pretty""#, "log.format"),
    ("log.level", r#""debug""#, "log.level"),
    ("api.listen", r#"["127.0.0.1:PORT", "127.0.0.1:9"]"#, "api.listen"),
    ("api.max_body", r#""1MiB""#, "api.max_body"),
    ("api.allow_unauthenticated", "true", "api.allow_unauthenticated"),
    ("api.allow", r#"["127.0.0.0/8"]"#, "api.allow"),
    ("api.rate_limit_per_second", "1000", "api.rate_limit_per_second"),
    ("api.rate_limit_burst", "1000", "api.rate_limit_burst"),
    ("memory.ttl", r#""10m""#, "memory.ttl"),
    ("postgres.enabled", "true", "postgres.enabled"),
    ("postgres.url", r#""postgres://u@127.0.0.1:9/db2""#, "postgres.url"),
    ("postgres.password_file", r#""two""#, "postgres.password_file"),
    ("postgres.sslmode", r#""require""#, "postgres.sslmode"),
    ("postgres.ssl_root_cert", r#""ca.pem""#, "postgres.ssl_root_cert"),
    ("postgres.pool_size", "4", "postgres.pool_size"),
    ("postgres.statement_cache", "false", "postgres.statement_cache"),
    ("postgres.connect_timeout", r#""3s""#, "postgres.connect_timeout"),
    ("postgres.statement_timeout", r#""5s""#, "postgres.statement_timeout"),
    ("retry.enabled", "false", "retry.enabled"),
    ("retry.initial_interval", r#""1s""#, "retry.initial_interval"),
    ("retry.max_interval", r#""2m""#, "retry.max_interval"),
    ("retry.multiplier", "3.0", "retry.multiplier"),
    ("retry.max_attempts", "3", "retry.max_attempts"),
    ("shutdown.graceful", "false", "shutdown.graceful"),
    ("shutdown.timeout", r#""5s""#, "shutdown.timeout"),
    ("refresh.emergency", "false", "refresh.emergency"),
    ("refresh.fetch_timeout", r#""5s""#, "refresh.fetch_timeout"),
    ("refresh.max_stale", r#""1h""#, "refresh.max_stale"),
    ("refresh.jitter", r#""30s""#, "refresh.jitter"),
    ("supervisor.max_restarts", "9", "supervisor.max_restarts"),
    ("supervisor.restart_window", r#""2m""#, "supervisor.restart_window"),
    ("caches.0.name", r#""other""#, "caches"),
    ("caches.0.refresh_every", r#""1h""#, "caches[plain].refresh_every"),
    ("caches.0.rich_refresh_every", r#""2h""#, "caches[plain].rich_refresh_every"),
    ("caches.0.max_size", r#""1MiB""#, "caches[plain].max_size"),
    ("caches.0.retention_days", "90", "caches[plain].retention_days"),
    ("caches.0.schema", r#""schema.json""#, "caches[plain].schema"),
    ("caches.1.source.client_id", r#""2""#, "caches[strava].source.client_id"),
    ("caches.1.source.client_secret", r#""b""#, "caches[strava].source.client_secret"),
    ("caches.1.source.refresh_token", r#""r2""#, "caches[strava].source.refresh_token"),
    ("caches.1.source.base_url", r#""http://127.0.0.1:10""#, "caches[strava].source.base_url"),
    ("caches.1.source.per_page", "50", "caches[strava].source.per_page"),
    ("caches.2.source.app_id", r#""b""#, "caches[jg].source.app_id"),
    ("caches.2.source.page_short_name", r#""other""#, "caches[jg].source.page_short_name"),
    ("caches.3.source.url", r#""http://127.0.0.1:9/b""#, "caches[web].source.url"),
    ("caches.3.source.headers", r#"{ x-key = "v2" }"#, "caches[web].source.headers"),
    ("caches.3.source.bearer_token", r#""t2""#, "caches[web].source.bearer_token"),
    ("caches.4.source.argv", r#"["true"]"#, "caches[cmd].source.argv"),
    ("caches.4.source.timeout", r#""20s""#, "caches[cmd].source.timeout"),
    ("caches.4.source", r#"{ kind = "http", url = "http://127.0.0.1:9/c" }"#, "caches[cmd].source.kind"),
];

/// [`BASE`] for `port`, with `path` (dotted, array entries by index) set to `value`.
fn config(port: u16, edit: Option<(&str, &str)>) -> String {
    let text = BASE.replace("PORT", &port.to_string());
    let Some((path, value)) = edit else { return text };
    let mut doc: toml::Table = text.parse().unwrap();
    let value = value.replace("PORT", &port.to_string());
    let value = format!("v = {value}").parse::<toml::Table>().unwrap().remove("v").unwrap();
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    let mut at = &mut doc;
    let mut i = 0;
    while i < parents.len() {
        at = match at.get_mut(parents[i]) {
            Some(toml::Value::Array(items)) => {
                i += 1;
                items[parents[i].parse::<usize>().unwrap()].as_table_mut().unwrap()
            }
            Some(toml::Value::Table(t)) => t,
            other => panic!("{path}: {other:?} is not a table"),
        };
        i += 1;
    }
    at.insert((*last).to_owned(), value);
    toml::to_string(&doc).unwrap()
}

fn start() -> Daemon {
    let mut app = new_app(crate::helpers::Options::new());
    for (name, text) in [("one", "first\n"), ("two", "second\n"), ("schema.json", "{}")] {
        std::fs::write(app.dir().join(name), text).unwrap();
    }
    app.set_config(config(app.port(), None));
    app.start_again();
    app
}

/// The `keys` of the log lines with message `text`.
fn keys_in(lines: &[Value], text: &str) -> Vec<String> {
    lines.iter().filter(|l| message(l) == text).flat_map(|l| l["keys"].as_str().map(str::to_owned)).collect()
}

#[test]
fn every_changed_key_is_named_as_applied_or_needing_a_restart() {
    let mut app = start();
    for (path, value, key) in CASES {
        let before = app.log_lines().len();
        app.set_config(config(app.port(), Some((path, value))));
        assert!(reload(&app), "{path} = {value}: the reload was rejected:\n{}", app.stdout());
        let lines = app.log_lines().split_off(before);
        let quoted = format!("\"{key}\"");
        let applied = keys_in(&lines, "configuration change applied").iter().any(|k| k.contains(&quoted));
        let restart = keys_in(&lines, "configuration change needs a restart").iter().any(|k| k.contains(&quoted));
        let table_key = key.split_once("].").map_or(key.to_string(), |(_, k)| format!("caches.{k}"));
        let expected_restart = RESTART.contains(&table_key.as_str());
        assert!(applied || restart, "{path}: {key} not named in any log line: {lines:#?}");
        assert_eq!((applied, restart), (!expected_restart, expected_restart), "{path}: {key}: {lines:#?}");
    }
    // Back to the start: every key changed above is reported again, nothing else.
    app.set_config(config(app.port(), None));
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
    app.set_config(config(app.port(), Some(("api.max_body", r#""1KiB""#))));
    assert!(reload(&app));
    assert_eq!(app.put_json("plain", &body).status, 413);

    // refresh.emergency = false: an empty cache is not fetched for a reader.
    app.set_config(config(app.port(), Some(("refresh.emergency", "false"))));
    assert!(reload(&app));
    let r = app.get_cache("cmd");
    assert_eq!((r.status, r.json()["code"].clone()), (503, Value::from("no_data")), "{r:?}");
    app.set_config(config(app.port(), None));
    assert!(reload(&app));
    assert_eq!(app.get_cache("cmd").status, 200, "the emergency refresh is back");

    // refresh.fetch_timeout: the slow command (1 s) no longer fits.
    app.set_config(config(app.port(), Some(("refresh.fetch_timeout", r#""200ms""#))));
    assert!(reload(&app));
    let asked = Instant::now();
    let r = app.get_cache("slow");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(asked.elapsed() < Duration::from_millis(900), "the fetch ran {:?}", asked.elapsed());
    assert_eq!(app.pid(), pid, "no restart");
}
