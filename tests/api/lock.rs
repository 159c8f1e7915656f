//! One running instance per data_dir: a second one exits 73.

use crate::helpers::spawn_app;
use std::fs;
use tiercache_testkit::daemon::free_port;

/// A config for the same data_dir as `app` but on another port.
fn second_config(app: &tiercache_testkit::Daemon) -> std::path::PathBuf {
    let path = app.dir().join("second.toml");
    fs::write(
        &path,
        format!("data_dir = \"data\"\n[log]\nformat = \"json\"\n[api]\nlisten = [\"127.0.0.1:{}\"]\n", free_port()),
    )
    .unwrap();
    path
}

#[test]
fn second_instance_on_the_same_data_dir_exits_73() {
    let mut app = spawn_app();
    app.put_ok("strava", "[1]");
    let second = second_config(&app);
    let out = app.run(&["run", "--config", second.to_str().unwrap()], &[]);
    assert_eq!(out.code, 73, "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one stderr line: {:?}", out.stderr);
    assert!(lines[0].contains("lock"), "{:?}", lines[0]);
    // The first instance is unaffected.
    assert!(app.is_running());
    assert_eq!(app.get_cache("strava").body, "[1]");

    // Once the first stops, the lock is free.
    app.stop();
    app.start_again();
    assert_eq!(app.get_cache("strava").body, "[1]");
}

#[test]
fn lock_is_released_by_kill_9() {
    let mut app = spawn_app();
    app.put_ok("strava", "[1]");
    app.kill9();
    // The lock file stays behind; the lock itself does not.
    assert!(app.data_dir().join("lock").exists());
    app.start_again();
    assert_eq!(app.get_cache("strava").body, "[1]");
}

#[test]
fn a_clean_stop_leaves_no_pid_in_the_lock_file() {
    let mut app = spawn_app();
    let lock = app.data_dir().join("lock");
    assert_eq!(fs::read_to_string(&lock).unwrap(), app.pid().to_string(), "the running instance's PID");
    app.stop();
    assert_eq!(fs::read_to_string(&lock).unwrap_or_default(), "", "a stale PID after a clean stop");
    // An offline command on the same data_dir leaves none either.
    let out = app.run(&["export", "backup", "--config", app.config_path().to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fs::read_to_string(&lock).unwrap_or_default(), "", "a stale PID after export");
}
