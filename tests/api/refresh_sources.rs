//! The JustGiving and command sources (docs/sources.md): money amounts kept exact to
//! the penny as the API's decimal strings; a command that outlives its timeout is
//! killed, with whatever it started, and the refresh fails.

use crate::fake_upstream::{justgiving_page, FakeUpstream, Reply};
use crate::helpers::{spawn_app_with, Options};
use crate::refresh_support::{failed_lines, retry_after, wait_for, wait_refreshed};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn justgiving_amounts_are_exact_to_the_penny() {
    let up = FakeUpstream::start();
    let page = justgiving_page("my-marathon", "1234.56", "5000.00", "12345678901234567890.01");
    up.route("GET", "/app-7f3a/v1/fundraising/pages/my-marathon", Reply::json(200, page.clone()));
    let tables = format!(
        "[[caches]]\nname = \"fundraising\"\nrefresh_every = \"15m\"\n[caches.source]\nkind = \"justgiving\"\n\
         app_id = \"app-7f3a\"\npage_short_name = \"my-marathon\"\nbase_url = \"{}\"\n",
        up.base_url()
    );
    let app = spawn_app_with(Options::new().tables(&tables));
    wait_refreshed(&app, "fundraising", 1, Duration::from_secs(3));

    let calls = up.requests();
    assert_eq!(calls.len(), 1, "{:?}", up.summary());
    assert_eq!(calls[0].path, "/app-7f3a/v1/fundraising/pages/my-marathon");
    assert_eq!(calls[0].header("accept"), Some("application/json"));

    let r = app.get_cache("fundraising");
    assert_eq!(r.status, 200, "{r:?}");
    // Served in canonical form (sorted keys, no spaces), the amounts exactly as sent.
    for exact in [
        r#""totalRaisedOnline":"1234.56""#,
        r#""fundraisingTarget":"5000.00""#,
        r#""grandTotalRaisedExcludingGiftAid":"12345678901234567890.01""#,
        r#""totalRaisedOffline":"0.00""#,
        r#""totalEstimatedGiftAid":"246.91""#,
        r#""currencySymbol":"£""#,
    ] {
        assert!(r.body.contains(exact), "{exact} not in {}", r.body);
    }
    let sent: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(r.json(), sent, "the document is the page as fetched");
}

/// Whether process `pid` is gone (a zombie waiting for its parent counts as gone).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "PID (comm) STATE ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn a_command_past_its_timeout_is_killed_and_the_refresh_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (shell_pid, sleep_pid) = (dir.path().join("shell.pid"), dir.path().join("sleep.pid"));
    let script = format!("echo $$ > {}; sleep 30 & echo $! > {}; wait", shell_pid.display(), sleep_pid.display());
    let tables = format!(
        "[[caches]]\nname = \"cmd\"\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout = \"500ms\"\n",
        json!(script)
    );
    let app = spawn_app_with(Options::new().tables(&tables));

    // An empty cache: the reader's emergency refresh runs the command, which hangs.
    let asked = Instant::now();
    let r = app.get_cache("cmd");
    let took = asked.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    r.assert_json_error();
    assert!(retry_after(&r) >= 1, "{r:?}");
    assert!(took < Duration::from_secs(3), "the read waited {took:?} for a command with a 500 ms timeout");

    let line = wait_for("a \"refresh failed\" line", Duration::from_secs(2), || failed_lines(&app, "cmd").pop());
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out") && error.contains("killed"), "{line}");

    let pids = wait_for("the command's pid files", Duration::from_secs(2), || {
        Some((read_pid(&shell_pid)?, read_pid(&sleep_pid)?))
    });
    wait_for(&format!("the shell ({}) and its sleep ({}) to be gone", pids.0, pids.1), Duration::from_secs(3), || {
        (gone(pids.0) && gone(pids.1)).then_some(())
    });
    assert_eq!(app.get("/healthz", &[]).status, 200);
}

#[test]
fn the_http_source_sends_its_headers_and_the_bearer_token_from_a_file() {
    let up = FakeUpstream::start();
    let body = r#"{"items": [{"id": 1, "price": "9.99"}], "count": 1}"#;
    up.route("GET", "/v2/feed", Reply::json(200, body));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("bearer");
    std::fs::write(&token, "tok-3e1f9\n").unwrap();
    let tables = format!(
        "[[caches]]\nname = \"feed\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"http\"\n\
         url = \"{}\"\nbearer_token_file = \"{}\"\nheaders = {{ X-Api-Key = \"key-81c2\" }}\n",
        up.url("/v2/feed?region=eu&limit=5"),
        token.display()
    );
    let app = spawn_app_with(Options::new().tables(&tables));
    wait_refreshed(&app, "feed", 1, Duration::from_secs(3));
    let req = up.requests().remove(0);
    assert_eq!(req.path, "/v2/feed?region=eu&limit=5");
    assert_eq!(req.header("authorization"), Some("Bearer tok-3e1f9"), "{req:?}");
    assert_eq!(req.header("x-api-key"), Some("key-81c2"), "{req:?}");
    let r = app.get_cache("feed");
    assert_eq!(r.body, r#"{"count":1,"items":[{"id":1,"price":"9.99"}]}"#, "stored as fetched, in canonical form");
    let stdout = app.stdout();
    assert!(!stdout.contains("tok-3e1f9") && !stdout.contains("key-81c2"), "a secret in the log:\n{stdout}");
}

#[test]
fn a_command_sources_output_is_the_document() {
    let tables = "[[caches]]\nname = \"cmd\"\nrefresh_every = \"1h\"\n[caches.source]\nkind = \"command\"\n\
                  argv = [\"sh\", \"-c\", \"printf '{\\\"total\\\": \\\"10.50\\\", \\\"ok\\\": true}'\"]\ntimeout = \"5s\"\n";
    let app = spawn_app_with(Options::new().tables(tables));
    wait_refreshed(&app, "cmd", 1, Duration::from_secs(3));
    let r = app.get_cache("cmd");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, r#"{"ok":true,"total":"10.50"}"#);
}
