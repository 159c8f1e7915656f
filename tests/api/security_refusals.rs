//! Every refusal of the API's guard is counted in
//! `tiercache_http_refusals_total{reason}`: 401 `unauthenticated`, 403
//! `forbidden_scope`, 403 `not_allowed` (allow-list) and 429 `rate_limited`, each
//! series at 0 from the start.

use crate::helpers::Options;
use crate::security_support::{raw_unix, reload, request_bytes, start_with_files};

const READER: &str = "rf-reader-4b8e1a2c9d0f";
const WRITER: &str = "rf-writer-6a0c3e5b7d9f";
const REASONS: [&str; 4] = ["unauthenticated", "forbidden_scope", "not_allowed", "rate_limited"];

/// The value of `tiercache_http_refusals_total{reason="REASON"}` in a scrape.
fn refusals(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("tiercache_http_refusals_total{{reason=\"{reason}\"}} ");
    let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
    let value = line.unwrap_or_else(|| panic!("no series for {reason}:\n{metrics}"));
    value.trim().parse().unwrap_or_else(|_| panic!("not a count: {value:?}"))
}

fn all_refusals(metrics: &str) -> [u64; 4] {
    REASONS.map(|reason| refusals(metrics, reason))
}

fn options(api_extra: &str) -> Options {
    Options::new()
        .listen("unix:./rf.sock")
        .api(&format!("tokens_file = \"tokens\"\nrate_limit_per_second = 1\nrate_limit_burst = 4\n{api_extra}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn security_refusals_are_counted_by_reason() {
    let tokens = format!("read:{READER}\nwrite:{WRITER}\n");
    let mut app = start_with_files(options(""), &[("tokens", &tokens)]);
    assert_eq!(all_refusals(&app.metrics()), [0, 0, 0, 0], "every series exists at 0 from the start");

    // 401 twice (no token, an invalid one), 403 once (a read token writing).
    assert_eq!(app.get("/v1/caches", &[]).status, 401);
    assert_eq!(app.get("/v1/caches", &[("Authorization", "Bearer nope")]).status, 401);
    let read = bearer(READER);
    let r =
        app.put("/v1/caches/strava", b"[1]", &[("Content-Type", "application/json"), ("Authorization", read.as_str())]);
    assert_eq!(r.status, 403, "{r:?}");
    // Then over the client's quota (burst 4, 1/s): count the 429s actually answered.
    let write = bearer(WRITER);
    let mut limited = 0;
    for _ in 0..8 {
        let status = app.get("/v1/caches", &[("Authorization", write.as_str())]).status;
        assert!(status == 200 || status == 429, "{status}");
        limited += u64::from(status == 429);
    }
    assert!(limited > 0, "the rate limit never answered 429");
    assert_eq!(all_refusals(&app.metrics()), [2, 1, 0, limited]);

    // The allow-list, by reload: TCP clients are refused, /metrics over the unix socket.
    app.set_config(options("allow = [\"10.0.0.0/8\"]").config_text());
    assert!(reload(&app), "{}", app.stdout());
    for path in ["/healthz", "/metrics", "/v1/caches"] {
        assert_eq!(app.get(path, &[]).status, 403, "{path}");
    }
    let socket = app.dir().join("rf.sock");
    let scrape = raw_unix(&socket, &request_bytes("GET", "/metrics", &[], None)).expect("/metrics over the socket");
    assert_eq!(scrape.status, 200, "{scrape:?}");
    assert_eq!(all_refusals(&scrape.body), [2, 1, 3, limited]);
}
