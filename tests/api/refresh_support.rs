//! What the refresher's black-box tests share: config snippets for caches with a source
//! pointed at a [`FakeUpstream`](crate::fake_upstream::FakeUpstream), waiting, reading
//! metrics and the daemon's "refreshed" log lines.

#![allow(dead_code)]

use serde_json::Value;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

/// `[[caches]]` with an `http` source GETting `url`; `every`/`rich` are
/// `refresh_every`/`rich_refresh_every` when given (none: refreshed on demand only).
pub fn http_cache(name: &str, url: &str, every: Option<&str>) -> String {
    let every = every.map(|e| format!("refresh_every = \"{e}\"\n")).unwrap_or_default();
    format!("[[caches]]\nname = \"{name}\"\n{every}[caches.source]\nkind = \"http\"\nurl = \"{url}\"\n")
}

/// `[[caches]]` named `strava` with a `strava` source at `base_url`.
pub fn strava_cache(base_url: &str, every: &str, rich: Option<&str>, per_page: u32) -> String {
    let rich = rich.map(|r| format!("rich_refresh_every = \"{r}\"\n")).unwrap_or_default();
    format!(
        "[[caches]]\nname = \"strava\"\nrefresh_every = \"{every}\"\n{rich}[caches.source]\nkind = \"strava\"\n\
         client_id = \"12345\"\nclient_secret = \"client-secret-s3cret\"\nrefresh_token = \"configured-refresh\"\n\
         base_url = \"{base_url}\"\nper_page = {per_page}\n"
    )
}

pub use tiercache_testkit::wait_for;

/// The value of `name{labels...}` in a Prometheus text exposition (labels may come in
/// any order, and the sample may have more labels than asked for).
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let have: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        labels.iter().all(|want| have.contains(want)).then(|| value.parse().ok())?
    })
}

/// The "refreshed" log lines of `cache` in the current run.
pub fn refreshed_lines(app: &Daemon, cache: &str) -> Vec<Value> {
    app.log_lines()
        .into_iter()
        .filter(|l| message(l) == "refreshed" && l.get("cache").and_then(Value::as_str) == Some(cache))
        .collect()
}

/// The "refresh failed" log lines of `cache` in the current run.
pub fn failed_lines(app: &Daemon, cache: &str) -> Vec<Value> {
    app.log_lines()
        .into_iter()
        .filter(|l| message(l).starts_with("refresh failed") && l.get("cache").and_then(Value::as_str) == Some(cache))
        .collect()
}

/// Waits until `cache` has logged `n` "refreshed" lines in the current run.
#[track_caller]
pub fn wait_refreshed(app: &Daemon, cache: &str, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = refreshed_lines(app, cache);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} \"refreshed\" lines of {cache} within {timeout:?}; stdout:\n{}",
            lines.len(),
            app.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds between consecutive instants.
pub fn gaps(times: &[Instant]) -> Vec<f64> {
    times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
}

/// GET `/v1/caches/NAME` until its body parses to `want`; returns the answer.
#[track_caller]
pub fn wait_for_body(app: &Daemon, name: &str, want: &Value, timeout: Duration) -> tiercache_testkit::Response {
    let deadline = Instant::now() + timeout;
    loop {
        let r = app.get_cache(name);
        if r.status == 200 && serde_json::from_str::<Value>(&r.body).ok().as_ref() == Some(want) {
            return r;
        }
        assert!(Instant::now() < deadline, "GET {name} never gave {want} within {timeout:?}; last: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The answer's `Retry-After` in whole seconds (panics when missing or not a number).
#[track_caller]
pub fn retry_after(r: &tiercache_testkit::Response) -> u64 {
    let v = r.header("retry-after").unwrap_or_else(|| panic!("no Retry-After: {r:?}"));
    v.parse().unwrap_or_else(|_| panic!("Retry-After {v:?} is not seconds: {r:?}"))
}

/// The daemon's refresh-related log lines of `cache` in the current run, shortened to
/// time, message, lag and error: for failure messages about timing.
pub fn timeline(app: &Daemon, cache: &str) -> Vec<String> {
    app.log_lines()
        .into_iter()
        .filter(|l| l.get("cache").and_then(Value::as_str) == Some(cache))
        .map(|l| {
            format!(
                "{} {} lag={} error={}",
                l["timestamp"].as_str().unwrap_or("?"),
                message(&l),
                l["lag_seconds"],
                l["error"]
            )
        })
        .collect()
}
