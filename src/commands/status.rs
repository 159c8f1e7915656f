//! `tiercache status [--json]`: one screen for a person about a running
//! daemon, or one JSON object for scripts.
//!
//! It asks the daemon's API (see [`super::get::Client`]) for `/readyz`, `/v1/caches`
//! (every configured cache with its meta, and the retry queue) and `/metrics` (actor
//! restarts, `postgres_up`). Exit codes as for `get`: 0, 69 unreachable, 77 refused,
//! 76 an answer that is not what the API promises.

use super::get::{Client, Origin, Reply, PROTOCOL};
use crate::config::Settings;
use crate::exit::Fatal;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;

/// What `status` learned from the daemon.
struct Report {
    address: String,
    ready: bool,
    caches: Vec<Value>,
    retry_queue: Value,
    /// Why saves cannot reach Postgres and what to do (`GET /v1/caches`' `postgres`).
    postgres: Value,
    postgres_up: Option<bool>,
    restarts: Option<BTreeMap<String, u64>>,
}

/// The value of `tiercache_postgres_up` and the `tiercache_actor_restarts_total`
/// counters in a Prometheus text exposition.
fn parse_metrics(text: &str) -> (Option<bool>, BTreeMap<String, u64>) {
    let mut up = None;
    let mut restarts = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        if series == "tiercache_postgres_up" {
            up = Some(value >= 1.0);
        } else if let Some(labels) = series.strip_prefix("tiercache_actor_restarts_total{") {
            let actor = labels
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("actor=\""))
                .and_then(|v| v.split('"').next())
                .unwrap_or("?");
            // Every actor's series exists from the start at zero; only restarts count.
            if value > 0.0 {
                *restarts.entry(actor.to_owned()).or_insert(0) += value as u64;
            }
        }
    }
    (up, restarts)
}

fn ensure_ok(reply: Reply, what: &str) -> Result<Reply, Fatal> {
    if reply.status == 200 {
        Ok(reply)
    } else {
        Err(reply.fail(what))
    }
}

fn collect(client: &Client) -> Result<Report, Fatal> {
    let ready = client.get("/readyz")?.status == 200;
    let list = ensure_ok(client.get("/v1/caches")?, "status")?.json("status")?;
    let caches = list
        .get("caches")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| Fatal::new(PROTOCOL, "status: /v1/caches has no \"caches\" list"))?;
    let retry_queue = list.get("retry_queue").cloned().unwrap_or(Value::Null);
    let postgres = list.get("postgres").cloned().unwrap_or(Value::Null);
    // Metrics are a bonus: a daemon that refuses them still has a status.
    let metrics = client.get("/metrics").ok().filter(|r| r.status == 200);
    let (postgres_up, restarts) = match metrics {
        Some(r) => {
            let (up, restarts) = parse_metrics(&String::from_utf8_lossy(&r.body));
            (up, Some(restarts))
        }
        None => (None, None),
    };
    // Without Postgres there is no retry queue, and the gauge means nothing.
    let postgres_up = if retry_queue.is_null() { None } else { postgres_up };
    Ok(Report { address: client.address(), ready, caches, retry_queue, postgres, postgres_up, restarts })
}

fn time_of(meta: &Value, key: &str) -> Option<DateTime<Utc>> {
    meta.get(key).and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.to_utc())
}

/// Seconds since the document's last fetch (its save time when it has none).
fn age_seconds(meta: &Value, now: DateTime<Utc>) -> Option<i64> {
    let at = time_of(meta, "last_fetch").or_else(|| time_of(meta, "saved_at"))?;
    Some((now - at).num_seconds().max(0))
}

/// `42s`, `5m03s`, `2h05m`, `3d04h`.
fn human(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn next_refresh(meta: &Value, now: DateTime<Utc>) -> String {
    // A cache without a source is never refreshed: its `next_refresh_at` is only when
    // its document turns stale. (`source` absent: an older daemon; show what it says.)
    if meta.get("source").is_some_and(Value::is_null) {
        return "- (no source)".into();
    }
    match time_of(meta, "next_refresh_at") {
        None => "-".into(),
        Some(at) if at >= now => format!("in {}", human((at - now).num_seconds())),
        Some(at) => format!("overdue {}", human((now - at).num_seconds())),
    }
}

/// One line per cache that cannot be served (`error`) or whose refreshes fail
/// (`last_refresh_error`), under the table: what an operator diagnosing bad credentials
/// needs first.
fn problems(caches: &[Value]) -> String {
    let mut out = String::new();
    for meta in caches {
        let s = |k: &str| meta.get(k).and_then(Value::as_str);
        let name = s("name").unwrap_or("?");
        if let Some(error) = s("error") {
            out.push_str(&format!("{name}: not served: {error}\n"));
        } else if let Some(error) = s("last_refresh_error") {
            let since = s("last_refresh_error_at").map(|t| format!(" (at {t})")).unwrap_or_default();
            out.push_str(&format!("{name}: last refresh failed{since}: {error}\n"));
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n{out}")
    }
}

fn render_text(report: &Report, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let state = if report.ready { "ready" } else { "not ready (starting or shutting down)" };
    out.push_str(&format!("tiercache at {}: {state}\n\n", report.address));
    let header = ["CACHE", "TIER", "VERSION", "AGE", "NEXT REFRESH", "SYNCED"].map(String::from);
    let mut rows = vec![header];
    for meta in &report.caches {
        let s = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        let tier = match (s("tier"), meta.get("stale").and_then(Value::as_bool)) {
            (Some(t), Some(true)) if t != "stale" => format!("{t} (stale)"),
            (Some(t), _) => t,
            (None, _) => "no data".into(),
        };
        let version = meta.get("version").and_then(Value::as_u64).map_or("-".into(), |v| v.to_string());
        let age = age_seconds(meta, now).map_or("-".into(), human);
        let synced = match meta.get("postgres_synced").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        rows.push([s("name").unwrap_or_default(), tier, version, age, next_refresh(meta, now), synced.into()]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&problems(&report.caches));
    out.push('\n');
    match report.retry_queue.as_object() {
        None => out.push_str("retry queue: none (Postgres disabled)\n"),
        Some(q) => {
            let depth = q.get("depth").and_then(Value::as_u64).unwrap_or(0);
            let oldest = q.get("oldest_age_seconds").and_then(Value::as_f64);
            let enabled = q.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            let mut line = format!("retry queue: {depth} pending");
            if let Some(oldest) = oldest.filter(|_| depth > 0) {
                line.push_str(&format!(", oldest {}", human(oldest as i64)));
            }
            if !enabled {
                line.push_str(" (background retry off)");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str(match report.postgres_up {
        Some(true) => "postgres: up\n",
        Some(false) => "postgres: DOWN\n",
        None if report.retry_queue.is_null() => "postgres: disabled\n",
        None => "postgres: unknown\n",
    });
    // The outage's cause and fix, as the daemon's retry queue found them.
    let said = |k: &str| report.postgres.get(k).and_then(Value::as_str);
    if let (Some(error), Some(fix)) = (said("error"), said("fix")) {
        let since = said("since").map(|t| format!(" (since {t})")).unwrap_or_default();
        out.push_str(&format!("  saves cannot reach Postgres{since}: {error}\n  fix: {fix}\n"));
    }
    match &report.restarts {
        None => out.push_str("actor restarts: unknown (/metrics not readable)\n"),
        Some(r) if r.values().all(|&n| n == 0) => out.push_str("actor restarts: none\n"),
        Some(r) => {
            let parts: Vec<String> = r.iter().filter(|(_, &n)| n > 0).map(|(a, n)| format!("{a} {n}")).collect();
            out.push_str(&format!("actor restarts: {}\n", parts.join(", ")));
        }
    }
    out
}

fn render_json(report: &Report, now: DateTime<Utc>) -> Value {
    let caches: Vec<Value> = report
        .caches
        .iter()
        .map(|meta| {
            let mut m = meta.as_object().cloned().unwrap_or_else(Map::new);
            m.insert("age_seconds".into(), age_seconds(meta, now).map_or(Value::Null, Value::from));
            Value::Object(m)
        })
        .collect();
    json!({
        "address": report.address,
        "ready": report.ready,
        "caches": caches,
        "retry_queue": report.retry_queue,
        "postgres": report.postgres,
        "postgres_up": report.postgres_up,
        "actor_restarts": report.restarts,
    })
}

/// `tiercache status [--json]`.
pub(crate) fn status(settings: &Settings, origin: &Origin, as_json: bool) -> Result<(), Fatal> {
    let client = Client::new(settings, origin, &|k| std::env::var(k).ok())?;
    let report = collect(&client)?;
    let now = Utc::now();
    let text = if as_json {
        let mut t = serde_json::to_string_pretty(&render_json(&report, now)).unwrap_or_default();
        t.push('\n');
        t
    } else {
        render_text(&report, now)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Fatal::new(crate::exit::SOFTWARE, format!("status: cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_restarts_and_postgres_up() {
        let text = "# HELP x\n# TYPE tiercache_actor_restarts counter\n\
                    tiercache_actor_restarts_total{actor=\"memory\"} 2\n\
                    tiercache_actor_restarts_total{actor=\"file\"} 1\n\
                    tiercache_postgres_up 1\n# EOF\n";
        let (up, restarts) = parse_metrics(text);
        assert_eq!(up, Some(true));
        assert_eq!(restarts.get("memory"), Some(&2));
        assert_eq!(restarts.get("file"), Some(&1));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(303), "5m03s");
        assert_eq!(human(7500), "2h05m");
        assert_eq!(human(3 * 86_400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn renders_a_table() {
        let now = Utc::now();
        let report = Report {
            address: "http://127.0.0.1:8077".into(),
            ready: true,
            caches: vec![
                json!({"name": "strava", "version": 3, "tier": "memory", "stale": false,
                       "last_fetch": (now - chrono::Duration::seconds(65)).to_rfc3339(),
                       "next_refresh_at": (now + chrono::Duration::seconds(7230)).to_rfc3339(),
                       "postgres_synced": true}),
                json!({"name": "fundraising", "version": null, "tier": null, "postgres_synced": null}),
            ],
            retry_queue: json!({"enabled": true, "depth": 1, "oldest_age_seconds": 12.5}),
            postgres: json!({"up": false, "error": "28P01: password authentication failed for user \"t\"",
                             "fix": "check the password", "since": "2025-01-01T00:00:00Z"}),
            postgres_up: Some(false),
            restarts: Some(BTreeMap::from([("memory".into(), 1)])),
        };
        let text = render_text(&report, now);
        assert!(text.contains("strava       memory   3        1m05s  in 2h00m"), "{text}");
        assert!(text.contains("fundraising  no data"), "{text}");
        assert!(text.contains("retry queue: 1 pending, oldest 12s"), "{text}");
        assert!(text.contains("postgres: DOWN"), "{text}");
        assert!(
            text.contains("saves cannot reach Postgres (since 2025-01-01T00:00:00Z): 28P01: password authentication")
                && text.contains("  fix: check the password"),
            "{text}"
        );
        assert!(text.contains("actor restarts: memory 1"), "{text}");
        let v = render_json(&report, now);
        assert_eq!(v["caches"][0]["age_seconds"], 65);
        // A cache without a source is never refreshed, whatever its schedule says.
        let put_only = json!({"name": "notes", "version": 1, "tier": "memory", "stale": false, "source": null,
                              "next_refresh_at": (now + chrono::Duration::seconds(60)).to_rfc3339()});
        assert_eq!(next_refresh(&put_only, now), "- (no source)");
        assert_eq!(v["actor_restarts"]["memory"], 1);
    }
}
