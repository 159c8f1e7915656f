//! The reload table against the configuration: every key a variable may set and every
//! key docs/config.md documents has a rule, every key the daemon reads has one, and
//! changing each key of the shared fixture (tests/fixtures/every-key.toml) in a real
//! file is reported as applied or as needing a restart, as the table says.

use super::table::{rule, Reload, TABLE};
use super::{diff, table_key, Changes};
use crate::config::layers::OVERRIDABLE_KEYS;
use crate::config::Settings;
use std::path::Path;
use tiercache_testkit::every_key::{edited, EVERY_KEY};

/// The fixture, with what only this test needs: a tokens file, a webhook verify token
/// and a fixed port.
fn base() -> String {
    let text = edited(EVERY_KEY, "api.tokens_file", Some(r#""DIR/tokens1""#));
    format!("{}\n[webhooks]\nstrava_verify_token = \"v1\"\n", text.replace("PORT", "8077"))
}

const TWO: &str = r#""DIR/two""#;

/// Per change: where (a key as the reload logs it, see [`edited`]), the new value, and
/// the key (table spelling) that must then show as changed (a source's `_file` changes
/// the secret it holds). Each key of the table is covered by a change of it or by a
/// change that shows as it.
const CASES: &[(&str, &str, &str)] = &[
    ("project", r#""p2""#, "project"),
    ("data_dir", r#""data2""#, "data_dir"),
    ("log.format", r#""pretty""#, "log.format"),
    ("log.level", r#""debug""#, "log.level"),
    ("api.listen", r#"["127.0.0.1:8078"]"#, "api.listen"),
    ("api.max_body", r#""1MiB""#, "api.max_body"),
    ("api.tokens_file", r#""DIR/tokens2""#, "api.tokens_file"),
    ("api.allow_unauthenticated", "true", "api.allow_unauthenticated"),
    ("api.allow", r#"["10.0.0.0/8"]"#, "api.allow"),
    ("api.rate_limit_per_second", "5", "api.rate_limit_per_second"),
    ("api.rate_limit_burst", "10", "api.rate_limit_burst"),
    ("api.workers", "3", "api.workers"),
    // Both or neither: turning TLS on needs a restart (the test sets the key as well).
    ("api.tls_cert", r#""DIR/cert2""#, "api.tls_cert"),
    ("api.tls_key", r#""DIR/key2""#, "api.tls_key"),
    ("memory.ttl", r#""10m""#, "memory.ttl"),
    ("postgres.enabled", "true", "postgres.enabled"),
    ("postgres.url", r#""postgres://u@h/db2""#, "postgres.url"),
    ("postgres.password_file", TWO, "postgres.password_file"),
    ("postgres.sslmode", r#""require""#, "postgres.sslmode"),
    ("postgres.ssl_root_cert", r#""DIR/ca""#, "postgres.ssl_root_cert"),
    ("postgres.pool_size", "4", "postgres.pool_size"),
    ("postgres.statement_cache", "false", "postgres.statement_cache"),
    ("postgres.connect_timeout", r#""3s""#, "postgres.connect_timeout"),
    ("postgres.statement_timeout", r#""5s""#, "postgres.statement_timeout"),
    ("postgres.heads_poll_interval", r#""5s""#, "postgres.heads_poll_interval"),
    ("postgres.single_instance", "true", "postgres.single_instance"),
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
    ("webhooks.strava_verify_token", r#""v2""#, "webhooks.strava_verify_token"),
    // Given as a file instead (the inline token goes: not both), see the test below.
    ("webhooks.strava_verify_token_file", r#""DIR/one""#, "webhooks.strava_verify_token_file"),
    // Renaming a cache removes one and adds another: the list of caches changes.
    ("caches[plain].name", r#""other""#, "caches"),
    ("caches[plain].refresh_every", r#""1h""#, "caches.refresh_every"),
    ("caches[plain].rich_refresh_every", r#""2h""#, "caches.rich_refresh_every"),
    ("caches[plain].max_size", r#""1MiB""#, "caches.max_size"),
    ("caches[plain].retention_days", "90", "caches.retention_days"),
    ("caches[plain].schema", r#""DIR/schema.json""#, "caches.schema"),
    ("caches[cmd].source", r#"{ kind = "http", url = "https://e.com" }"#, "caches.source.kind"),
    ("caches[strava].source.client_id", r#""2""#, "caches.source.client_id"),
    ("caches[strava].source.client_secret", r#""b""#, "caches.source.client_secret"),
    ("caches[strava-files].source.client_secret_file", TWO, "caches.source.client_secret"),
    ("caches[strava].source.refresh_token", r#""r2""#, "caches.source.refresh_token"),
    ("caches[strava-files].source.refresh_token_file", TWO, "caches.source.refresh_token_file"),
    ("caches[strava].source.base_url", r#""https://strava.test""#, "caches.source.base_url"),
    ("caches[strava].source.per_page", "50", "caches.source.per_page"),
    ("caches[strava].source.full_refresh_every", r#""12h""#, "caches.source.full_refresh_every"),
    ("caches[jg].source.app_id", r#""b""#, "caches.source.app_id"),
    ("caches[jg-file].source.app_id_file", TWO, "caches.source.app_id"),
    ("caches[jg].source.page_short_name", r#""other""#, "caches.source.page_short_name"),
    ("caches[web].source.url", r#""https://example.com/b""#, "caches.source.url"),
    ("caches[web].source.headers", r#"{ x-key = "v2" }"#, "caches.source.headers"),
    ("caches[web].source.bearer_token", r#""t2""#, "caches.source.bearer_token"),
    ("caches[web-file].source.bearer_token_file", TWO, "caches.source.bearer_token"),
    ("caches[cmd].source.argv", r#"["false"]"#, "caches.source.argv"),
    ("caches[cmd].source.timeout", r#""20s""#, "caches.source.timeout"),
];

/// A directory with the files the fixture names: `one` and `two` differ.
fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one"), "first\n").unwrap();
    std::fs::write(dir.path().join("two"), "second\n").unwrap();
    dir
}

fn load(dir: &Path, text: &str) -> Result<Settings, crate::config::ConfigError> {
    let path = dir.join("tiercache.toml");
    std::fs::write(&path, text.replace("DIR", &dir.display().to_string())).unwrap();
    Settings::load(Some(&path), &|_| None)
}

/// [`base`] with the change of one case made.
fn changed(path: &str, value: &str) -> String {
    let text = edited(&base(), path, Some(value));
    match path {
        "webhooks.strava_verify_token_file" => edited(&text, "webhooks.strava_verify_token", None),
        "api.tls_cert" | "api.tls_key" => {
            edited(&edited(&text, "api.tls_cert", Some(r#""DIR/cert2""#)), "api.tls_key", Some(r#""DIR/key2""#))
        }
        _ => text,
    }
}

/// Which list `key` (table spelling) is in, if any.
fn reported(changes: &Changes, key: &str) -> Option<bool> {
    let is = |list: &[String]| list.iter().any(|k| table_key(k) == key);
    match (is(&changes.applied), is(&changes.needs_restart)) {
        (true, false) => Some(false),
        (false, true) => Some(true),
        (false, false) => None,
        (true, true) => panic!("{key} reported both applied and needing a restart: {changes:?}"),
    }
}

#[test]
fn every_listed_and_documented_key_has_a_rule() {
    // The keys a variable may set, and docs/config.md's reference (the caches' keys too).
    let documented = super::reference_tests::reference();
    assert!(documented.len() > OVERRIDABLE_KEYS.len(), "read docs/config.md's reference: {documented:?}");
    for key in OVERRIDABLE_KEYS.iter().copied().chain(documented.keys().map(String::as_str)) {
        assert!(rule(key).is_some(), "{key} is missing from the reload table");
    }
    // And the other way: every key outside `[[caches]]` can be set by a variable.
    for (key, _) in TABLE.iter().filter(|(k, _)| !k.starts_with("caches")) {
        assert!(OVERRIDABLE_KEYS.contains(key), "{key} is missing from OVERRIDABLE_KEYS");
    }
}

#[test]
fn every_key_of_a_full_configuration_has_a_rule() {
    let dir = files();
    let settings = load(dir.path(), &base()).unwrap();
    let flat = super::flatten::flatten(&settings);
    for key in flat.keys() {
        assert!(rule(&table_key(key)).is_some(), "{key} is missing from the reload table");
    }
    // The fixture sets every key: each of the table's is in the flattened form (a
    // cache's name is compared as part of `caches`).
    for (key, _) in TABLE.iter().filter(|(k, _)| *k != "caches.name") {
        assert!(flat.keys().any(|k| table_key(k) == *key), "{key}: not set by the fixture");
    }
}

#[test]
fn changing_each_key_is_reported_as_the_table_says() {
    let dir = files();
    let old = load(dir.path(), &base()).unwrap();
    assert_eq!(diff(&old, &load(dir.path(), &base()).unwrap()), Changes::default(), "no change, nothing reported");
    for (key, _) in TABLE {
        let covered = CASES.iter().any(|(path, _, shows_as)| table_key(path) == *key || shows_as == key);
        assert!(covered, "{key}: no case in CASES changes it");
    }
    for (path, value, shows_as) in CASES {
        let new = load(dir.path(), &changed(path, value)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let changes = diff(&old, &new);
        let restart = reported(&changes, shows_as).unwrap_or_else(|| panic!("{path}: not reported: {changes:?}"));
        let expected = match rule(shows_as).unwrap_or_else(|| panic!("{shows_as} is missing from the reload table")) {
            Reload::Applied(_) => false,
            Reload::Restart => true,
            Reload::AppliedUnlessToggled(_) => true, // toggled here
        };
        assert_eq!(restart, expected, "{path}: {changes:?}");
    }
}

#[test]
fn a_new_certificate_path_is_applied_but_turning_tls_off_needs_a_restart() {
    let dir = files();
    let with_tls =
        |cert: &str| edited(&edited(&base(), "api.tls_cert", Some(cert)), "api.tls_key", Some(r#""DIR/k1""#));
    let on = load(dir.path(), &with_tls(r#""DIR/c1""#)).unwrap();
    let moved = load(dir.path(), &with_tls(r#""DIR/c2""#)).unwrap();
    assert_eq!(reported(&diff(&on, &moved), "api.tls_cert"), Some(false));
    let off = load(dir.path(), &base()).unwrap();
    assert_eq!(reported(&diff(&on, &off), "api.tls_cert"), Some(true));
}

#[test]
fn secrets_never_appear_in_the_flattened_form() {
    let dir = files();
    let settings = load(dir.path(), &base()).unwrap();
    let flat = format!("{:?}", super::flatten::flatten(&settings));
    for secret in ["\"a\"", "\"t1\"", "v1", "first", "u@127.0.0.1"] {
        assert!(!flat.contains(secret), "{secret} in {flat}");
    }
}
