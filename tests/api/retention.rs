//! Retention without Postgres: a cache removed from the configuration loses its file
//! once unsaved for the `retention_days` it was last configured with (default 30),
//! remembered across restarts; configured caches and younger files stay.

use crate::helpers::{spawn_app_with, Options};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::envelope;
use tiercache_testkit::Daemon;

fn options() -> Options {
    Options::new().env("TIERCACHE_RETENTION_INTERVAL", "1s").env("RUST_LOG", "info,tiercache_actors::retention=debug")
}

fn purged_files(app: &Daemon) -> Vec<(String, i64, i64)> {
    app.log_lines()
        .iter()
        .filter(|l| message(l) == "retention: purged a cache no longer configured" && l["tier"] == "file")
        .map(|l| {
            let n = |k: &str| l[k].as_i64().unwrap_or(-1);
            (l["cache"].as_str().unwrap_or_default().to_owned(), n("age_days"), n("retention_days"))
        })
        .collect()
}

fn passes(app: &Daemon) -> usize {
    app.log_lines().iter().filter(|l| message(l) == "retention pass finished").count()
}

/// Waits until `target` retention passes of the current run have finished.
fn wait_total_passes(app: &Daemon, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while passes(app) < target {
        assert!(Instant::now() < deadline, "no retention pass; stdout:\n{}", app.stdout());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `n` more retention passes have finished.
fn wait_passes(app: &Daemon, n: usize) {
    wait_total_passes(app, passes(app) + n);
}

fn cache(name: &str, retention_days: u32) -> String {
    format!("[[caches]]\nname = \"{name}\"\nretention_days = {retention_days}\n")
}

#[test]
fn without_postgres_removed_caches_lose_their_files_after_their_retention() {
    let mut app = spawn_app_with(
        options().tables(&[cache("keep", 30), cache("old", 30), cache("young", 30), cache("long", 90)].concat()),
    );
    for name in ["keep", "old", "young", "long"] {
        app.put_ok(name, "[1]");
    }
    wait_passes(&app, 1); // `long`'s 90 days are on record
    app.stop();
    for (name, days) in [("keep", 40), ("old", 40), ("young", 10), ("long", 40)] {
        envelope::backdate(&app.cache_file(name), days);
    }
    app.set_config(options().tables(&cache("keep", 30)).config_text());
    app.start_again();
    wait_passes(&app, 2);
    assert_eq!(purged_files(&app), [("old".to_owned(), 40, 30)], "stdout:\n{}", app.stdout());
    assert!(!app.cache_file("old").exists());
    for name in ["keep", "young", "long"] {
        assert!(app.cache_file(name).exists(), "{name}'s file was purged");
    }
    assert!(app.files_in("tombstones").is_empty(), "a retention purge is not a DELETE");
    assert_eq!(app.get_cache("keep").status, 200);

    // Removed by SIGHUP with a shorter retention than its age: purged at the next pass.
    app.set_config(options().tables(&[cache("keep", 30), cache("young", 5)].concat()).config_text());
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    wait_passes(&app, 2);
    assert!(app.cache_file("young").exists(), "young is configured again");
    app.set_config(options().tables(&cache("keep", 30)).config_text());
    app.signal(Signal::SIGHUP);
    wait_passes(&app, 2);
    assert!(!app.cache_file("young").exists(), "young: removed, 10 days old, last configured with 5 days");
    assert!(app.cache_file("long").exists());
    assert_eq!(app.get_cache("keep").status, 200);
}

#[test]
fn a_reload_runs_a_pass_with_the_retentions_it_gave() {
    // Passes an hour apart: only startup and reloads run one here.
    let slow = || options().env("TIERCACHE_RETENTION_INTERVAL", "1h");
    let mut app = spawn_app_with(slow().tables(&[cache("keep", 30), cache("old", 30)].concat()));
    app.put_ok("old", "[1]");
    app.set_config(options().tables(&[cache("keep", 30), cache("old", 30), cache("x", 90)].concat()).config_text());
    app.signal(Signal::SIGHUP);
    app.wait_for_message("configuration reloaded");
    app.put_ok("x", "[1]");
    app.stop();
    envelope::backdate(&app.cache_file("old"), 40);
    envelope::backdate(&app.cache_file("x"), 40);
    app.start_again();
    wait_total_passes(&app, 1);
    assert!(purged_files(&app).is_empty(), "both configured: {:?}", purged_files(&app));

    let before = passes(&app);
    app.set_config(options().tables(&cache("keep", 30)).config_text());
    app.signal(Signal::SIGHUP);
    wait_total_passes(&app, before + 1);
    assert_eq!(purged_files(&app), [("old".to_owned(), 40, 30)], "stdout:\n{}", app.stdout());
    assert!(app.cache_file("x").exists(), "x was purged after 40 of its 90 days");
}
