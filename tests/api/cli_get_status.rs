//! `tiercache get NAME [--meta]` and `tiercache status [--json]`: clients of a
//! running daemon, found through the same configuration file. Exit codes: 0 done,
//! 65 unknown cache, 69 daemon not reachable, 77 refused (no valid token).

use crate::helpers::{new_app, spawn_app_with, Options};
use serde_json::{json, Value};
use tiercache_actors::domain::sha256;
use tiercache_testkit::cli::Output;
use tiercache_testkit::Daemon;

/// `tiercache ARGS --config CONFIG` in the app's directory.
fn cli(app: &Daemon, config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().expect("UTF-8 path")]);
    app.run(&all, env)
}

#[track_caller]
fn ok(out: &Output) {
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

#[track_caller]
fn fails_with(out: &Output, code: i32, text: &str) {
    assert_eq!(out.code, code, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr: {lines:?}");
    assert!(lines[0].contains(text), "{:?} should mention {text:?}", lines[0]);
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
}

#[test]
fn get_prints_the_document_and_its_meta_and_status_shows_every_cache() {
    let app = spawn_app_with(Options::new().caches(&["notes", "empty"]));
    let doc = json!({"b": [1, 2, 3], "a": "x"});
    let version = app.put_ok("notes", &doc.to_string()).etag_version().expect("ETag");
    let config = app.config_path();

    let out = cli(&app, &config, &["get", "notes"], &[]);
    ok(&out);
    assert_eq!(out.stdout, format!("{}\n", app.get_cache("notes").body), "the document as served");
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), doc);

    let out = cli(&app, &config, &["get", "notes", "--meta"], &[]);
    ok(&out);
    let meta: Value = serde_json::from_str(&out.stdout).expect("meta is JSON");
    assert_eq!(meta["version"], version);
    assert_eq!(meta["name"], "notes");
    assert_eq!(meta["tier"], "memory");

    let out = cli(&app, &config, &["status"], &[]);
    ok(&out);
    let row = out.stdout.lines().find(|l| l.starts_with("notes ")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(row.contains("memory") && row.contains(&format!(" {version} ")), "{row}");
    assert!(out.stdout.lines().any(|l| l.starts_with("empty ") && l.contains("no data")), "{}", out.stdout);
    assert!(row.contains("- (no source)"), "a cache filled by PUT is never refreshed: {row}");
    assert!(out.stdout.contains(": ready"), "{}", out.stdout);
    assert!(out.stdout.contains("actor restarts: none"), "{}", out.stdout);
    assert!(out.stdout.contains("retry queue: none (Postgres disabled)"), "{}", out.stdout);

    let out = cli(&app, &config, &["status", "--json"], &[]);
    ok(&out);
    let status: Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    assert_eq!(status["ready"], true);
    let caches = status["caches"].as_array().expect("caches");
    let notes = caches.iter().find(|c| c["name"] == "notes").expect("notes listed");
    assert_eq!(notes["version"], version);
    assert!(notes["age_seconds"].as_i64().is_some_and(|a| a >= 0), "{notes}");
    assert!(caches.iter().any(|c| c["name"] == "empty" && c["version"].is_null()), "{status}");
    assert_eq!(status["actor_restarts"], json!({}));
    assert_eq!(status["postgres_up"], Value::Null);
}

#[test]
fn unknown_caches_exit_65_and_empty_ones_69() {
    let app = spawn_app_with(Options::new().caches(&["notes"]));
    let config = app.config_path();
    fails_with(&cli(&app, &config, &["get", "nope"], &[]), 65, "nope");
    fails_with(&cli(&app, &config, &["get", "nope", "--meta"], &[]), 65, "nope");
    fails_with(&cli(&app, &config, &["get", "../healthz"], &[]), 65, "not a valid cache name");
    fails_with(&cli(&app, &config, &["get", "notes"], &[]), 69, "503");
}

#[test]
fn an_unreachable_daemon_is_69_with_one_line() {
    let mut app = spawn_app_with(Options::new().caches(&["notes"]));
    app.stop();
    let config = app.config_path();
    fails_with(&cli(&app, &config, &["status"], &[]), 69, "cannot reach the daemon at http://127.0.0.1:");
    fails_with(&cli(&app, &config, &["get", "notes"], &[]), 69, "cannot reach the daemon");
    let unix = app.dir().join("unix.toml");
    std::fs::write(&unix, "data_dir = \"data\"\n[api]\nlisten = [\"unix:nowhere.sock\"]\n").unwrap();
    fails_with(&cli(&app, &unix, &["status", "--json"], &[]), 69, "cannot reach the daemon at unix:nowhere.sock");
}

#[test]
fn talks_over_a_unix_socket_when_it_is_the_first_listener() {
    let app = spawn_app_with(Options::new().caches(&["notes"]).listen("unix:api.sock"));
    app.put_ok("notes", r#"{"n": 1}"#);
    // A client config whose first listener is the socket (relative to the working dir).
    let config = app.dir().join("client.toml");
    std::fs::write(&config, "data_dir = \"data\"\n[api]\nlisten = [\"unix:api.sock\"]\n[[caches]]\nname = \"notes\"\n")
        .unwrap();
    let out = cli(&app, &config, &["get", "notes"], &[]);
    ok(&out);
    assert_eq!(out.stdout, "{\"n\":1}\n");
    let out = cli(&app, &config, &["status"], &[]);
    ok(&out);
    assert!(out.stdout.contains("at unix:api.sock: ready"), "{}", out.stdout);
    fails_with(&cli(&app, &config, &["get", "nope"], &[]), 65, "nope");
}

#[test]
fn uses_a_clear_token_from_the_tokens_file_or_tiercache_token() {
    let hashed = hex::encode(sha256(b"hashed-secret"));
    let mut app = new_app(Options::new().caches(&["notes"]).api("tokens_file = \"tokens\""));
    std::fs::write(app.dir().join("tokens"), format!("write:sha256:{hashed}\nread:plain-read-token\n")).unwrap();
    app.start_again();
    let put = app.put(
        "/v1/caches/notes",
        br#"{"n": 2}"#,
        &[("Content-Type", "application/json"), ("Authorization", "Bearer hashed-secret")],
    );
    assert_eq!(put.status, 200, "{put:?}");
    let config = app.config_path();
    let out = cli(&app, &config, &["get", "notes"], &[]);
    ok(&out);
    assert_eq!(out.stdout, "{\"n\":2}\n");

    // Only hashed tokens: the client needs TIERCACHE_TOKEN.
    std::fs::write(app.dir().join("tokens"), format!("write:sha256:{hashed}\n")).unwrap();
    app.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = cli(&app, &config, &["get", "notes"], &[]);
        if out.code == 77 {
            fails_with(&out, 77, "401");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the reload did not drop the read token: {out:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = cli(&app, &config, &["status"], &[("TIERCACHE_TOKEN", "hashed-secret")]);
    ok(&out);
    assert!(out.stdout.lines().any(|l| l.starts_with("notes ")), "{}", out.stdout);
}
