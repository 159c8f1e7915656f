//! A burst of malformed requests over raw TCP: each is refused (400, or 431 for a head
//! that is too large) and counted in `tiercache_http_requests_rejected_total{reason}`,
//! and none writes an ERROR or WARN line: those are for the daemon's own failures. At
//! `debug`, a sample of them is logged.

use crate::helpers::{spawn_app_with, Options};
use crate::security_support::raw_tcp;
use serde_json::Value;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

const BURST: usize = 200;

/// Garbage an unauthenticated client can send, one kind per entry.
fn garbage(i: usize) -> Vec<u8> {
    match i % 7 {
        // A TLS ClientHello on the plain port.
        0 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x9a\r\n\r\n".to_vec(),
        1 => b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        2 => b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        3 => b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
        4 => b"PUT /v1/caches/strava HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        5 => b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
        // More headers than the server takes.
        _ => {
            let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
            for h in 0..200 {
                head.extend_from_slice(format!("X-H{h}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            head
        }
    }
}

/// The sum of a counter family's samples, 0 when it has none yet.
fn rejected_total(app: &Daemon) -> f64 {
    app.metrics()
        .lines()
        .filter(|l| l.starts_with("tiercache_http_requests_rejected_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn level(line: &Value) -> &str {
    line.get("level").and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn a_burst_of_malformed_requests_is_counted_and_writes_no_error_or_warn_line() {
    let app = spawn_app_with(Options::new().log(r#"level = "debug""#));
    assert_eq!(rejected_total(&app), 0.0);
    let started = Instant::now();
    for i in 0..BURST {
        // The server closes without reading all of a big head: the client may see the
        // connection reset before the 431.
        if let Ok(resp) = raw_tcp(app.port(), &garbage(i)) {
            assert!([400, 431].contains(&resp.status), "garbage {}: {resp:?}", i % 7);
        }
    }
    let burst = started.elapsed();
    assert_eq!(app.get("/healthz", &[]).status, 200, "the daemon must keep answering");

    let deadline = Instant::now() + Duration::from_secs(5);
    while rejected_total(&app) < BURST as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = app.log_lines();
    let loud: Vec<&Value> = lines.iter().filter(|l| ["ERROR", "WARN"].contains(&level(l))).collect();
    assert!(loud.is_empty(), "ERROR or WARN lines after malformed requests: {loud:#?}");
    assert!(!app.stderr().contains("stream error"), "stderr: {}", app.stderr());
    let metrics = app.metrics();
    assert_eq!(rejected_total(&app), BURST as f64, "every malformed request counted once:\n{metrics}");
    for reason in ["header", "version", "too_large"] {
        assert!(
            metrics.contains(&format!("tiercache_http_requests_rejected_total{{reason=\"{reason}\"}}")),
            "{metrics}"
        );
    }

    // Sampled at debug: one line per 10 s at most, the first at once.
    let sampled: Vec<&Value> = lines.iter().filter(|l| message(l) == "malformed HTTP request rejected").collect();
    let allowed = 1 + burst.as_secs() as usize / 10;
    assert!((1..=allowed).contains(&sampled.len()), "{} sampled lines in {burst:?}: {sampled:#?}", sampled.len());
    assert_eq!(level(sampled[0]), "DEBUG");
    assert!(sampled[0]["reason"].is_string() && sampled[0]["error"].is_string(), "{}", sampled[0]);
}
