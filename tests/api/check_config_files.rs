//! `check-config` prints a secret given as a `_file` key as that key, with the file
//! name as written (a bare name found in `$CREDENTIALS_DIRECTORY` stays bare), never the
//! secret and never a made-up `client_secret = "[redacted]"`; inline secrets stay
//! redacted. Its output loads again to the same configuration.

use crate::helpers::run_cmd;
use std::fs;

const SOURCES: &str = r#"data_dir = "data"
[[caches]]
name = "strava"
[caches.source]
kind = "strava"
client_id = "1"
client_secret_file = "strava-client-secret"
refresh_token_file = "strava-refresh-token"
[[caches]]
name = "fundraising"
[caches.source]
kind = "justgiving"
app_id_file = "justgiving-app-id"
page_short_name = "walk"
[[caches]]
name = "feed"
[caches.source]
kind = "http"
url = "https://example.com/feed"
bearer_token = "SECRET-inline-bearer"
"#;

#[test]
fn file_keys_are_printed_as_written_and_inline_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    fs::create_dir(&creds).unwrap();
    for (name, secret) in [
        ("strava-client-secret", "SECRET-client"),
        ("strava-refresh-token", "SECRET-refresh"),
        ("justgiving-app-id", "SECRET-app"),
    ] {
        fs::write(creds.join(name), format!("{secret}\n")).unwrap();
    }
    fs::write(dir.path().join("tiercache.toml"), SOURCES).unwrap();
    let env = [("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())];
    let out = run_cmd(dir.path(), &["check-config", "--config", "tiercache.toml"], &env);
    assert_eq!(out.code, 0, "{out:?}");
    let printed = &out.stdout;
    for line in [
        r#"client_secret_file = "strava-client-secret""#,
        r#"refresh_token_file = "strava-refresh-token""#,
        r#"app_id_file = "justgiving-app-id""#,
        r#"bearer_token = "[redacted]""#,
    ] {
        assert!(printed.lines().any(|l| l.trim() == line), "no {line:?} in:\n{printed}");
    }
    for absent in ["client_secret =", "refresh_token =", "app_id =", "bearer_token_file", "SECRET"] {
        assert!(!printed.contains(absent), "{absent:?} in:\n{printed}");
    }
    // What it prints is a configuration that loads to the same output.
    fs::write(dir.path().join("printed.toml"), printed).unwrap();
    let again = run_cmd(dir.path(), &["check-config", "--config", "printed.toml"], &env);
    assert_eq!((again.code, &again.stdout), (0, printed), "{again:?}");
}
