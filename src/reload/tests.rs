//! The reload table against the configuration: every key a variable may set and every
//! key docs/config.md documents has a rule, every key the daemon reads has one, and
//! changing each key of the shared fixture (tests/fixtures/every-key.toml) in a real
//! file is reported as applied or as needing a restart, as the table says (the changes
//! are the black-box reload test's: `tiercache_testkit::every_key::CHANGES`).

use super::table::{rule, table, Reload};
use super::{diff, table_key, Changes};
use crate::config::layers::overridable_keys;
use crate::config::Settings;
use std::path::Path;
use tiercache_testkit::every_key::{edited, CHANGES, EVERY_KEY};

/// The fixture, with what only this test needs: a tokens file, a webhook verify token
/// and a fixed port.
fn base() -> String {
    let text = edited(EVERY_KEY, "api.tokens_file", Some(r#""DIR/tokens1""#));
    format!("{}\n[webhooks]\nstrava_verify_token = \"verify-token-secret\"\n", text.replace("PORT", "8077"))
}

/// A directory with the files the fixture names: `one` and `two` differ.
fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one"), "first\n").unwrap();
    std::fs::write(dir.path().join("two"), "second\n").unwrap();
    dir
}

fn load(dir: &Path, text: &str) -> Result<Settings, crate::config::ConfigError> {
    let path = dir.join("tiercache.toml");
    std::fs::write(&path, text.replace("DIR", &dir.display().to_string()).replace("PORT", "8077")).unwrap();
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

/// Which list `key` (table spelling, or as logged) is in, if any.
fn reported(changes: &Changes, key: &str) -> Option<bool> {
    let is = |list: &[String]| list.iter().any(|k| k == key || table_key(k) == key);
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
    // (The variables' keys are the table's outside `[[caches]]`, by construction.)
    let documented = super::reference_tests::reference();
    let overridable = overridable_keys();
    assert!(documented.len() > overridable.len(), "read docs/config.md's reference: {documented:?}");
    for key in overridable.into_iter().chain(documented.keys().map(String::as_str)) {
        assert!(rule(key).is_some(), "{key} is missing from the reload table");
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
    for (key, _) in table().filter(|(k, _)| *k != "caches.name") {
        assert!(flat.keys().any(|k| table_key(k) == *key), "{key}: not set by the fixture");
    }
}

#[test]
fn changing_each_key_is_reported_as_the_table_says() {
    let dir = files();
    let old = load(dir.path(), &base()).unwrap();
    assert_eq!(diff(&old, &load(dir.path(), &base()).unwrap()), Changes::default(), "no change, nothing reported");
    for (key, _) in table() {
        let covered = CHANGES.iter().any(|c| table_key(c.path) == key || table_key(c.shows_as) == key);
        assert!(covered, "{key}: no change in CHANGES changes it");
    }
    for change in CHANGES {
        let path = change.path;
        let new = load(dir.path(), &changed(path, change.value)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let changes = diff(&old, &new);
        let shows_as = change.shows_as;
        let restart = reported(&changes, shows_as).unwrap_or_else(|| panic!("{path}: not reported: {changes:?}"));
        let table_key = table_key(shows_as);
        let expected = match rule(&table_key).unwrap_or_else(|| panic!("{table_key} is missing from the reload table"))
        {
            Reload::Applied(_) => false,
            Reload::Restart => true,
            Reload::AppliedUnlessToggled(_) => true, // toggled here
        };
        assert_eq!(restart, expected, "{path}: {changes:?}");
        assert_eq!(change.restart, expected, "{path}: CHANGES disagrees with the reload table");
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
    // Secrets that cannot occur by chance (the temporary directory's random name is in
    // the flattened form).
    for secret in ["\"a\"", "\"t1\"", "verify-token-secret", "first", "u@127.0.0.1"] {
        assert!(!flat.contains(secret), "{secret} in {flat}");
    }
}
