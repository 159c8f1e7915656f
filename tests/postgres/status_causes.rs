//! Every cause between a cache and its data is shown: with Postgres stopped and the
//! upstream failing, meta's `error` and `tiercache status` name both, so an operator who
//! fixes one learns that the other remains.

use crate::helpers::{cluster, seen, wait_for, Conf, BIN, DB};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use tiercache_testkit::fake_http::{FakeServer, Reply};
use tiercache_testkit::Daemon;

fn meta(d: &Daemon) -> Value {
    let r = d.get("/v1/caches/feed/meta", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

fn status(d: &Daemon) -> String {
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(d.config_path())
        .current_dir(d.dir())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tiercache status");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn postgres_down_and_a_failing_upstream_are_both_named() {
    let mut pg = cluster();
    let upstream = FakeServer::start(|_| Reply::json(502, r#"{"message":"bad gateway upstream"}"#));
    let feed = format!(
        "[[caches]]\nname = \"feed\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"http\"\nurl = \"{}\"\n",
        upstream.url("/feed")
    );
    let d = Conf::new(pg.url(DB, "postgres")).tables(&feed).start();
    pg.stop();

    // The start-up refresh fails (the upstream), and reading the tiers fails (Postgres).
    let m = wait_for("meta to name both causes", Duration::from_secs(30), || {
        let m = meta(&d);
        let error = m["error"].as_str().unwrap_or_default().to_owned();
        let done = error.contains("502") && error.contains("could not be read");
        seen(m, done)
    });
    assert_eq!(m["version"], Value::Null, "{m}");
    assert!(m["last_refresh_error"].as_str().is_some_and(|e| e.contains("502")), "{m}");
    let text = status(&d);
    let line = text.lines().find(|l| l.starts_with("feed: ")).unwrap_or_else(|| panic!("no feed line:\n{text}"));
    assert!(line.contains("could not be read") && line.contains("502"), "both causes on the line: {line}");

    // Postgres back: what remains is the upstream.
    pg.start_again();
    let m = wait_for("meta to name only the upstream", Duration::from_secs(30), || {
        let m = meta(&d);
        let error = m["error"].as_str().unwrap_or_default().to_owned();
        let done = error.contains("502") && !error.contains("could not be read");
        seen(m, done)
    });
    assert_eq!(m["version"], Value::Null, "{m}");
    let text = status(&d);
    let line = text.lines().find(|l| l.starts_with("feed: ")).unwrap_or_else(|| panic!("no feed line:\n{text}"));
    assert!(line.contains("502") && !line.contains("could not be read"), "{line}");
}
