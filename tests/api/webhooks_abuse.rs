//! What anyone on the Internet can do with the public webhook route, and what it costs:
//! forged events for activities Strava does not have cost a handful of upstream calls
//! (coalesced, the pushed share of the budget) and leave refreshes working; events of
//! unknown athletes cost at most one athlete question; a flood keeps the daemon
//! answering (`/healthz`, a PUT's latency) and the metrics small; anonymous refusals
//! write no warning; only the route the table marks as the webhook's takes no token.

use crate::helpers::Options;
use crate::refresh_support::{metric_value, wait_for, wait_refreshed};
use crate::security_support::start_with_files;
use crate::webhook_support::{event, event_of, fake_strava, post_event, record_subscription, tables, ATHLETE, VERIFY};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tiercache_testkit::rng::Rng;
use tiercache_testkit::Daemon;

/// A daemon with the `strava` cache refreshed once and its athlete known (unless the
/// fake's `GET /api/v3/athlete` fails), and a PUT-only `notes` cache.
fn started(athlete_status: u16) -> (Daemon, crate::fake_upstream::FakeUpstream) {
    started_in(athlete_status, None)
}

/// [`started`], with `data_dir` a link to `data_dir` when given.
fn started_in(athlete_status: u16, data_dir: Option<&std::path::Path>) -> (Daemon, crate::fake_upstream::FakeUpstream) {
    let (up, athlete) = fake_strava(10);
    athlete.lock().unwrap().athlete_status = athlete_status;
    let tables = format!("{}\n[[caches]]\nname = \"notes\"\n", tables(&up.base_url()));
    let mut app = crate::helpers::new_app(Options::new().tables(&tables));
    if let Some(dir) = data_dir {
        std::os::unix::fs::symlink(dir, app.data_dir()).expect("link data_dir");
    }
    app.start_again();
    wait_refreshed(&app, "strava", 1, Duration::from_secs(10));
    wait_for("the athlete asked", Duration::from_secs(5), || {
        up.requests().iter().any(|r| r.route() == "/api/v3/athlete").then_some(())
    });
    (app, up)
}

#[test]
fn three_hundred_forged_events_for_unknown_activities_cost_at_most_ten_calls() {
    let (app, up) = started(200);
    let before = up.requests().len();
    let mut rng = Rng(0x5eed_0023);
    for _ in 0..300 {
        let id = rng.range(1_000_000, 9_000_000_000);
        let aspect = *rng.pick(&["create", "update"]);
        assert_eq!(post_event(&app, &event("activity", id, aspect, ATHLETE, json!({}))).status, 200);
    }
    // Wait for every event taken in to have been settled (queued, then missing).
    let taken = || {
        let m = app.metrics();
        let n = |t, o| metric_value(&m, "tiercache_webhook_events_total", &[("type", t), ("outcome", o)]);
        ["activity.create", "activity.update"].iter().map(|t| n(t, "queued").unwrap_or(0.0)).sum::<f64>()
    };
    wait_for("the events taken in", Duration::from_secs(10), || (taken() > 0.0).then_some(()));
    // The pending ids are asked about within the (growing) coalescing window.
    let settle = Instant::now() + Duration::from_secs(20);
    let mut last = up.requests().len();
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_secs(4));
        let now = up.requests().len();
        if now == last && now > before {
            break;
        }
        last = now;
    }
    let calls: Vec<String> = up.summary()[before..].to_vec();
    assert!(!calls.is_empty(), "the events were asked about");
    assert!(calls.len() <= 10, "{} upstream calls for 300 forged events: {calls:#?}", calls.len());
    assert!(calls.iter().all(|c| !c.contains("/api/v3/activities/")), "no detail call for an id Strava does not list");
    assert_eq!(app.get_cache("strava").json()["activities"].as_array().map(Vec::len), Some(10), "nothing changed");
    // Each call is counted once (a webhook fetch runs alone for its cache).
    let metrics = app.metrics();
    let counted =
        metric_value(&metrics, "tiercache_upstream_calls_total", &[("cache", "strava"), ("reason", "webhook")]);
    assert_eq!(counted, Some(calls.len() as f64), "{metrics}");

    // Scheduled and on-demand refreshes keep their budget.
    let lists = up.count("GET", "/api/v3/athlete/activities");
    let r = app.request("POST", "/v1/caches/strava/refresh", None, &[]);
    assert_eq!(r.status, 202, "{r:?}");
    up.wait_for("GET", "/api/v3/athlete/activities", lists + 1, Duration::from_secs(10));
    wait_refreshed(&app, "strava", 2, Duration::from_secs(10));
}

#[test]
fn a_hundred_events_of_unknown_athletes_before_the_athlete_is_known_cost_at_most_three_calls() {
    // Strava's athlete endpoint failed at the first refresh: the athlete is unknown.
    let (app, up) = started(500);
    let before = up.requests().len();
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..100 {
        let owner = rng.range(1, 1_000_000_000);
        let id = rng.range(1, 1_000_000);
        assert_eq!(post_event(&app, &event("activity", id, "create", owner, json!({}))).status, 200);
    }
    let ignored = wait_for("the events settled", Duration::from_secs(10), || {
        let metrics = app.metrics();
        metric_value(&metrics, "tiercache_webhook_events_total", &[("type", "activity.create"), ("outcome", "ignored")])
            .filter(|n| *n >= 100.0)
    });
    assert_eq!(ignored, 100.0);
    std::thread::sleep(Duration::from_millis(500));
    let calls: Vec<String> = up.summary()[before..].to_vec();
    assert!(calls.len() <= 3, "{} upstream calls: {calls:#?}", calls.len());
    assert!(calls.iter().filter(|c| c.contains("/api/v3/athlete ")).count() <= 1, "{calls:#?}");
}

/// Sends `bodies` as webhook events over `connections` keep-alive connections, each
/// pipelining its requests in batches; returns how many were answered 200.
fn flood(port: u16, bodies: Vec<String>, connections: usize) -> usize {
    let chunk = bodies.len().div_ceil(connections);
    let parts: Vec<Vec<String>> = bodies.chunks(chunk).map(<[String]>::to_vec).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = parts.into_iter().map(|part| s.spawn(move || send_pipelined(port, &part))).collect();
        workers.into_iter().map(|w| w.join().expect("flood thread")).sum()
    })
}

fn send_pipelined(port: u16, bodies: &[String]) -> usize {
    const BATCH: usize = 50;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut ok = 0;
    let mut pending: Vec<u8> = Vec::new();
    for batch in bodies.chunks(BATCH) {
        let mut out = Vec::new();
        for body in batch {
            out.extend_from_slice(
                format!(
                    "POST /v1/webhooks/strava HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        stream.write_all(&out).expect("send");
        let mut answered = 0;
        let mut buf = [0u8; 64 * 1024];
        while answered < batch.len() {
            while let Some((status, used)) = one_response(&pending) {
                pending.drain(..used);
                answered += 1;
                ok += usize::from(status == 200);
            }
            if answered == batch.len() {
                break;
            }
            let n = stream.read(&mut buf).expect("read");
            assert!(n > 0, "the daemon closed the connection");
            pending.extend_from_slice(&buf[..n]);
        }
    }
    ok
}

/// The status and length of the first whole response in `bytes`.
fn one_response(bytes: &[u8]) -> Option<(u16, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().ok()))
        .flatten()
        .unwrap_or(0);
    (bytes.len() >= head_end + length).then_some((status, head_end + length))
}

fn random_event(rng: &mut Rng) -> String {
    let object = rng.pick(&["activity", "athlete", "club", "x"]).to_string();
    let object = if rng.next().is_multiple_of(4) { format!("{object}-{}", rng.next()) } else { object };
    let aspect = format!("{}{}", rng.pick(&["create", "update", "delete", "z"]), rng.next() % 50_000);
    let aspect =
        if rng.next().is_multiple_of(2) { rng.pick(&["create", "update", "delete"]).to_string() } else { aspect };
    json!({"object_type": object, "object_id": rng.range(1, u64::MAX / 2), "aspect_type": aspect,
        "owner_id": if rng.next().is_multiple_of(3) { ATHLETE } else { rng.range(1, 1_000_000_000) },
        "subscription_id": 120475, "event_time": 1516126040, "updates": {}})
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

#[test]
fn a_flood_of_100000_events_keeps_the_daemon_answering_and_the_metrics_small() {
    // data_dir in memory: what is measured is the flood's effect, not the shared
    // machine's disk (an fsync there can take a second under other engineers' builds).
    let data_dir = tempfile::Builder::new().prefix("tiercache-flood-").tempdir_in("/dev/shm").expect("tmpfs");
    let (app, _up) = started_in(200, Some(data_dir.path()));
    let metrics_before = app.metrics().len();
    let mut rng = Rng(0x5eed_f100d);
    let bodies: Vec<String> = (0..100_000).map(|_| random_event(&mut rng)).collect();
    let port = app.port();
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (answered, (puts, health)) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let (mut puts, mut health) = (Vec::new(), Vec::new());
            let mut i = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let t = Instant::now();
                let r = app.put(
                    "/v1/caches/notes",
                    format!("{{\"n\": {i}}}").as_bytes(),
                    &[("Content-Type", "application/json")],
                );
                puts.push((r.status, t.elapsed()));
                let h = app.get("/healthz", &[]);
                health.push(if h.status == 200 { "200".to_owned() } else { format!("{} {}", h.status, h.body) });
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (puts, health)
        });
        let answered = flood(port, bodies, 4);
        done.store(true, std::sync::atomic::Ordering::Release);
        (answered, prober.join().expect("prober"))
    });
    let took = started.elapsed();
    assert_eq!(answered, 100_000, "every event answered 200");
    assert!(
        health.iter().all(|s| s == "200"),
        "healthz: {:?}",
        health.iter().filter(|s| *s != "200").collect::<Vec<_>>()
    );
    assert!(puts.iter().all(|(s, _)| *s == 200), "{puts:?}");
    assert!(puts.len() >= 20, "{} PUTs during the flood ({took:?})", puts.len());
    let mut latencies: Vec<Duration> = puts.iter().map(|(_, t)| *t).collect();
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "flood of 100,000 events in {took:?}; {} PUTs, p50 {:?}, p99 {p99:?}",
        puts.len(),
        percentile(&latencies, 0.5)
    );
    assert!(p99 < Duration::from_millis(100), "PUT p99 {p99:?} during the flood ({took:?})");

    // Attacker-chosen strings never become labels.
    let metrics = app.metrics();
    assert!(metrics.len() < 64 * 1024, "/metrics is {} bytes (was {metrics_before})", metrics.len());
    let dropped =
        metric_value(&metrics, "tiercache_webhook_events_total", &[("type", "other"), ("outcome", "dropped")]);
    assert!(dropped.is_some_and(|n| n > 0.0), "{metrics}");
    assert_eq!(app.get("/healthz", &[]).status, 200);
}

#[test]
fn anonymous_requests_write_no_warning_and_are_counted() {
    let mut app =
        crate::helpers::new_app(Options::new().tables(&format!("[webhooks]\nstrava_verify_token = \"{VERIFY}\"\n")));
    record_subscription(&app, 120475);
    app.start_again();
    let mut rng = Rng(0x5eed_0026);
    for i in 0..1000u64 {
        let r = match i % 4 {
            0 => app.get(
                &format!(
                    "/v1/webhooks/strava?hub.mode=subscribe&hub.verify_token=guess-{}&hub.challenge=x",
                    rng.next()
                ),
                &[],
            ),
            1 => post_event(&app, &event_of(rng.range(1, 120_000), "activity", i, "create", ATHLETE, json!({}))),
            2 => post_event(&app, "{\"not\": \"an event\"}"),
            _ => post_event(&app, &event("activity", i, "update", rng.range(1, 1000), json!({}))),
        };
        assert!(matches!(r.status, 200 | 400 | 403), "{r:?}");
    }
    let metrics = app.metrics();
    let handshakes = metric_value(&metrics, "tiercache_webhook_handshakes_total", &[("result", "refused")]);
    assert_eq!(handshakes, Some(250.0), "{metrics}");
    let other = metric_value(&metrics, "tiercache_webhook_events_total", &[("outcome", "other_subscription")]);
    assert_eq!(other, Some(250.0), "{metrics}");
    let lines = app.log_lines();
    let loud: Vec<&Value> = lines.iter().filter(|l| matches!(l["level"].as_str(), Some("WARN" | "ERROR"))).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    let summaries = lines
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("webhook route: anonymous requests")))
        .count();
    assert!((1..=2).contains(&summaries), "one sampled INFO line a minute, {summaries} found");
}

#[test]
fn only_the_route_the_table_marks_as_the_webhooks_takes_no_token() {
    let app = start_with_files(
        Options::new()
            .api("tokens_file = \"tokens\"")
            .tables(&format!("[webhooks]\nstrava_verify_token = \"{VERIFY}\"\n")),
        &[("tokens", "write:writer-token-0123456789\n")],
    );
    let r = post_event(&app, &event("activity", 1, "create", ATHLETE, json!({})));
    assert_eq!(r.status, 200, "{r:?}");
    for (method, path) in [("POST", "/v1/webhooks/other"), ("GET", "/v1/webhooks/strava/x"), ("GET", "/v1/webhooks")] {
        let r = app.request(method, path, Some(b"{}"), &[("Content-Type", "application/json")]);
        assert_eq!(r.status, 401, "{method} {path}: {r:?}");
    }
}
