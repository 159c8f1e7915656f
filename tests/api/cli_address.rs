//! `get` and `status` say in their error line which address they asked and where it
//! came from: the built-in default when no `--config` was given and there is no
//! `./tiercache.toml`, the variable `TIERCACHE__API__LISTEN` when set, else the file's
//! `api.listen`.

use crate::helpers::{run_cmd, spawn_app_with, Options};

#[test]
fn without_a_config_the_error_names_the_default_address() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["status"][..], &["get", "strava"]] {
        let out = run_cmd(dir.path(), args, &[]);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}: {out:?}");
        // 69 when nothing listens there; another daemon's answer still names the address.
        assert!(lines[0].contains("http://127.0.0.1:8077"), "{args:?}: {}", lines[0]);
        assert!(lines[0].contains("no --config given and no ./tiercache.toml"), "{args:?}: {}", lines[0]);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
    }
}

#[test]
fn an_answered_error_names_the_daemon_and_the_file() {
    let app = spawn_app_with(Options::new().caches(&["notes"]));
    let config = app.config_path();
    let out = app.run(&["get", "notes", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = out.stderr_lines()[0].to_owned();
    let asked = format!("the daemon at http://127.0.0.1:{} (api.listen of {})", app.port(), config.display());
    assert!(line.contains(&asked), "{line:?} should contain {asked:?}");
    assert!(line.contains("503"), "{line}");
}

#[test]
fn an_address_from_the_environment_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // A file that names another address: the variable wins, and the line says so.
    std::fs::write(dir.path().join("tiercache.toml"), "[api]\nlisten = [\"127.0.0.1:1\"]\n").unwrap();
    let port = tiercache_testkit::port::free_port();
    let addr = format!("127.0.0.1:{port}");
    for args in [&["status"][..], &["get", "strava", "--config", "tiercache.toml"]] {
        let out = run_cmd(dir.path(), args, &[("TIERCACHE__API__LISTEN", addr.as_str())]);
        assert_eq!(out.code, 69, "{args:?}: {out:?}");
        let line = out.stderr_lines()[0].to_owned();
        assert!(line.contains(&format!("http://{addr} (api.listen from $TIERCACHE__API__LISTEN")), "{args:?}: {line}");
        assert!(!line.contains("tiercache.toml"), "the file did not name this address: {line}");
    }
}
