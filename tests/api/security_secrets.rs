//! No secret in any log line: a daemon with API tokens and a Postgres URL holding a
//! password (Postgres unreachable, so connection errors and retries are logged), at
//! level debug, serving valid and invalid tokens, rotating them by SIGHUP, rejecting a
//! bad tokens file and logging a status snapshot; then every line of its stdout and
//! stderr, and of `check-config`, is searched for each secret.

use crate::helpers::{command, Options};
use crate::security_support::{reload, start_with_files, write_file};
use nix::sys::signal::Signal;
use std::time::Duration;
use tiercache_actors::domain::sha256;
use tiercache_testkit::daemon::EXIT_TIMEOUT;

const PASSWORD: &str = "SECRETPW";
const READER: &str = "reader-tok-3a9f1c22d7e4";
const WRITER: &str = "writer-tok-b81d5e6f0a93";
const ROTATED: &str = "rotated-tok-44c2e19a7b05";
const HASHED: &str = "hashed-tok-e0d9c8b7a6f5";
const INVALID: &str = "invalid-tok-9e8d7c6b5a41";
const IN_BAD_FILE: &str = "badfile-tok-1029384756ab";

#[test]
fn security_no_secret_reaches_a_log_line() {
    let hashed_digest = hex::encode(sha256(HASHED.as_bytes()));
    let options = Options::new().log("level = \"debug\"").api("tokens_file = \"tokens\"").tables(&format!(
        "[postgres]\nenabled = true\nurl = \"postgres://u:{PASSWORD}@127.0.0.1:1/db\"\nconnect_timeout = \"1s\"\n\
             [retry]\nenabled = true\ninitial_interval = \"50ms\"\nmax_interval = \"200ms\"\n\
             [shutdown]\ntimeout = \"1s\""
    ));
    let tokens = format!("read:{READER}\nwrite:{WRITER}\nwrite:sha256:{hashed_digest}\n");
    let mut app = start_with_files(options, &[("tokens", &tokens)]);

    let json = ("Content-Type", "application/json");
    let with = |token: &str| format!("Bearer {token}");
    let auth_put =
        |token: &str| app.put("/v1/caches/strava", b"[1,2,3]", &[json, ("Authorization", &with(token))]).status;
    assert_eq!(auth_put(WRITER), 200);
    assert_eq!(auth_put(HASHED), 200);
    assert_eq!(auth_put(READER), 403);
    assert_eq!(auth_put(INVALID), 401);
    assert_eq!(app.get("/v1/caches/strava", &[("Authorization", &with(READER))]).status, 200);
    assert_eq!(app.get("/v1/caches", &[("Authorization", &with(INVALID))]).status, 401);
    assert_eq!(app.get("/v1/caches", &[("Authorization", &format!("Basic {PASSWORD}"))]).status, 401);
    // The password sent where a token goes.
    assert_eq!(app.get("/v1/caches", &[("Authorization", &with(PASSWORD))]).status, 401);

    // Rotation, a rejected file holding a token, a status snapshot, a refresh-all.
    write_file(&app, "tokens", &format!("write:{ROTATED}\nread:{READER}\n"));
    assert!(reload(&app));
    assert_eq!(auth_put(ROTATED), 200);
    assert_eq!(auth_put(WRITER), 401);
    write_file(&app, "tokens", &format!("write:{ROTATED}\nsuperuser:{IN_BAD_FILE}\n"));
    assert!(!reload(&app));
    app.signal(Signal::SIGUSR2);
    app.signal(Signal::SIGUSR1);
    // Let the retry queue fail against the unreachable Postgres a few times (each
    // failure logs the connection's error, which must not carry the password).
    tiercache_testkit::wait_for("failed writes to Postgres", Duration::from_secs(10), || {
        let failed = app.metric("tiercache_postgres_writes_total{result=\"error\"}").unwrap_or(0.0);
        tiercache_testkit::wait::seen(failed, failed >= 2.0)
    });
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(EXIT_TIMEOUT), Some(0), "{}", app.stderr());

    // check-config of the same configuration: it checks the tokens file too, so the
    // bad file is refused (without quoting it), then the good one passes.
    let check = || {
        command(app.dir()).arg("check-config").arg("--config").arg(app.config_path()).output().expect("check-config")
    };
    let refused = check();
    assert_eq!(refused.status.code(), Some(78), "{}", String::from_utf8_lossy(&refused.stderr));
    write_file(&app, "tokens", &format!("write:{ROTATED}\nread:{READER}\n"));
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut texts = vec![
        ("check-config stdout".to_owned(), String::from_utf8_lossy(&out.stdout).into_owned()),
        ("check-config stderr".to_owned(), String::from_utf8_lossy(&out.stderr).into_owned()),
        ("refused check-config stderr".to_owned(), String::from_utf8_lossy(&refused.stderr).into_owned()),
    ];
    for entry in std::fs::read_dir(app.dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            texts.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    let logged: usize = texts.iter().map(|(_, t)| t.lines().count()).sum();
    assert!(logged > 20, "too few log lines to mean anything: {logged}");
    // The daemon did meet the failures whose messages could carry the URL.
    let all: String = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("127.0.0.1:1") || all.to_lowercase().contains("postgres"), "no Postgres line logged");

    let secrets = [PASSWORD, READER, WRITER, ROTATED, HASHED, INVALID, IN_BAD_FILE, hashed_digest.as_str()];
    for (source, text) in &texts {
        for (i, line) in text.lines().enumerate() {
            for secret in secrets {
                assert!(!line.contains(secret), "{source} line {} holds a secret ({secret}): {line}", i + 1);
            }
        }
    }
}
