//! SIGTERM and SIGINT stop cleanly (exit 0); SIGHUP reloads (and rejects a bad file);
//! SIGUSR2 logs a status snapshot.

use crate::helpers::{spawn_app, Options};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::daemon::EXIT_TIMEOUT;

fn assert_graceful_exit(sig: Signal) {
    let mut app = spawn_app();
    assert_eq!(app.get("/readyz", &[]).status, 200);
    assert_eq!(app.get("/healthz", &[]).status, 200);
    app.put_ok("strava", "[1]");
    let started = Instant::now();
    app.signal(sig);
    let code = app.wait_exit(EXIT_TIMEOUT);
    assert_eq!(code, Some(0), "exit after {sig}; stderr:\n{}", app.stderr());
    assert!(started.elapsed() < Duration::from_secs(5), "{sig} took {:?}", started.elapsed());
    assert!(app.stderr().trim().is_empty(), "a clean stop prints nothing on stderr: {}", app.stderr());
    assert!(app.log_lines().iter().any(|l| message(l).contains("shutting down")), "{}", app.stdout());
    assert!(app.try_request("GET", "/readyz", None, &[]).is_err(), "still listening after exit");
    // The acknowledged save is there at the next start.
    app.start_again();
    assert_eq!(app.get_cache("strava").body, "[1]");
}

#[test]
fn sigterm_exits_0() {
    assert_graceful_exit(Signal::SIGTERM);
}

#[test]
fn sigint_exits_0() {
    assert_graceful_exit(Signal::SIGINT);
}

#[test]
fn sighup_applies_a_new_log_level_and_rejects_a_bad_file() {
    let mut app = spawn_app();
    let pid = app.pid();
    app.put_ok("strava", "[1]");
    assert!(app.log_lines().iter().all(|l| l["level"] != "DEBUG"), "debug lines at level info");

    // A valid new file with a new log level.
    app.set_config(Options::new().log("level = \"debug\"").config_text());
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    assert!(app.is_running(), "the process exited on SIGHUP");
    assert_eq!(app.pid(), pid);
    assert_eq!(app.get_cache("strava").status, 200);

    // A level that hides INFO: the "saved" lines stop (the reload line itself is INFO,
    // so the change shows only in what is no longer logged).
    app.set_config(Options::new().log("level = \"warn\"").config_text());
    app.signal(Signal::SIGHUP);
    let saved_logged =
        |version: u64| app.log_lines().iter().any(|l| message(l) == "saved" && l["version"].as_u64() == Some(version));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = app.put_ok("strava", "[1]").etag_version().expect("ETag");
        std::thread::sleep(Duration::from_millis(100));
        if !saved_logged(v) {
            break;
        }
        assert!(Instant::now() < deadline, "INFO lines still logged after reloading with level warn");
    }
    let v = app.put_ok("strava", "[1]").etag_version().expect("ETag");

    // A bad new file is rejected and the running configuration kept. The rejection is
    // an ERROR line written after the save: once it is in the log, the save's INFO line
    // would be too.
    let good = std::fs::read_to_string(app.config_path()).unwrap();
    app.set_config(format!("frobnicate = 1\n{good}"));
    app.signal(Signal::SIGHUP);
    let rejected = app.wait_for_message("reload rejected");
    assert!(rejected.to_string().contains("frobnicate"), "the rejection names the bad key: {rejected}");
    let saved = app.log_lines().into_iter().find(|l| message(l) == "saved" && l["version"].as_u64() == Some(v));
    assert!(saved.is_none(), "INFO line logged at level warn: {saved:?}");
    assert!(app.is_running());
    assert_eq!(app.pid(), pid);
    assert_eq!(app.get("/readyz", &[]).status, 200);
    assert_eq!(app.get_cache("strava").body, "[1]");
    app.put_ok("strava", "[2]");
    app.stop();
}

#[test]
fn sighup_keeps_the_caches_of_a_rejected_file() {
    let mut app = spawn_app();
    let good = std::fs::read_to_string(app.config_path()).unwrap();
    // Duplicate names: the whole file is rejected, strava stays configured.
    app.set_config(format!("{good}\n[[caches]]\nname = \"x\"\n[[caches]]\nname = \"x\"\n"));
    app.signal(Signal::SIGHUP);
    app.wait_for_message("reload rejected");
    app.put_ok("strava", "[1]");
    assert_eq!(app.get_cache("x").status, 404);

    // A valid file that declares other caches takes effect without a restart.
    app.set_config(format!("{good}\n[[caches]]\nname = \"x\"\n"));
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    app.put_ok("x", "[2]");
    assert_eq!(app.get_cache("strava").status, 404);
    app.stop();
}

#[test]
fn sigusr2_logs_a_status_snapshot() {
    let mut app = spawn_app();
    app.put_ok("strava", "[1]");
    app.signal(Signal::SIGUSR2);
    let line = app.wait_for_log("status snapshot", Duration::from_secs(5), |l| message(l) == "status snapshot");
    assert!(line.to_string().contains("strava"), "the snapshot covers the caches: {line}");
    assert!(app.is_running());
    app.stop();
}

#[test]
fn sigusr1_does_not_stop_the_daemon() {
    let mut app = spawn_app();
    app.signal(Signal::SIGUSR1);
    // Handled (its line is logged), and the daemon goes on.
    app.wait_for_message("SIGUSR1: refreshing every cache with a source");
    assert!(app.is_running());
    assert_eq!(app.get("/readyz", &[]).status, 200);
    app.stop();
}
