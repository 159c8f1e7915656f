//! A small fake upstream for the refresher's tests: a real HTTP/1.1 server on
//! `127.0.0.1:0`, one thread per connection, `Connection: close`.
//!
//! Routes are programmable (method + path prefix → status, headers, body, optional
//! delay, or a closure of the request and its call number), can be replaced while the
//! daemon runs, and every request is recorded (method, path with query, headers, body,
//! arrival time) before it is answered, so tests can count and space calls even when
//! the answer is delayed past the daemon's timeout.
//!
//! The helpers at the end shape answers like the real APIs' documentation: Strava's
//! `POST /oauth/token`, `GET /api/v3/athlete/activities` (with the `X-RateLimit-*` and
//! `X-ReadRateLimit-*` headers) and `GET /api/v3/activities/{id}`, and JustGiving's
//! `GET /{appId}/v1/fundraising/pages/{pageShortName}`.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names as sent; look them up with [`Recorded::header`].
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
    /// When the request (head and body) had arrived.
    pub at: Instant,
    /// The same, on the wall clock (to compare with the daemon's log timestamps).
    pub wall: chrono::DateTime<chrono::Utc>,
}

impl Recorded {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// A query parameter (decoded).
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path.split_once('?')?.1;
        decode_form(query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A field of an `application/x-www-form-urlencoded` body (decoded).
    pub fn form(&self, name: &str) -> Option<String> {
        decode_form(std::str::from_utf8(&self.body).ok()?).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn decode_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection: close` are added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Waited before anything is written.
    pub delay: Duration,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with `value` as its JSON body.
    pub fn ok(value: &Value) -> Self {
        Self::json(200, value.to_string())
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers only after `delay`.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Computes an answer from the request and its call number on this route (0-based).
type Responder = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

struct Route {
    method: String,
    prefix: String,
    responder: Responder,
    calls: usize,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<Vec<Route>>,
    log: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
}

/// The fake server; it stops accepting when dropped.
pub struct FakeUpstream {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeUpstream {
    /// Starts a server with no routes (everything answers 404).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake upstream");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let accept = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accept.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:PORT` (what the sources call `base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Answers requests of `method` whose path (without query) starts with `prefix`
    /// with `reply`; replaces a route of the same method and prefix (and its call count).
    pub fn route(&self, method: &str, prefix: &str, reply: Reply) {
        self.route_fn(method, prefix, move |_, _| reply.clone());
    }

    /// Like [`Self::route`] with an answer computed from the request and its call
    /// number on this route (0-based).
    pub fn route_fn(&self, method: &str, prefix: &str, f: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) {
        let mut routes = lock(&self.shared.routes);
        routes.retain(|r| !(r.method == method && r.prefix == prefix));
        routes.push(Route { method: method.into(), prefix: prefix.into(), responder: Arc::new(f), calls: 0 });
    }

    /// Answers `replies` in turn, then repeats the last one.
    pub fn route_seq(&self, method: &str, prefix: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "route_seq needs at least one reply");
        self.route_fn(method, prefix, move |_, n| replies[n.min(replies.len() - 1)].clone());
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// The requests of `method` whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.route().starts_with(prefix)).collect()
    }

    /// How many requests of `method` to `prefix` arrived.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.requests_to(method, prefix).len()
    }

    /// Waits until at least `n` requests of `method` to `prefix` arrived and returns
    /// them; panics with what arrived after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, method: &str, prefix: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests_to(method, prefix);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} {method} {prefix} calls within {timeout:?}; requests: {:#?}",
                got.len(),
                self.summary()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One line per request (method, path, arrival on the wall clock and since the
    /// first one), for messages.
    pub fn summary(&self) -> Vec<String> {
        let log = self.requests();
        let t0 = log.first().map(|r| r.at);
        log.iter()
            .map(|r| {
                let since = t0.map(|t| r.at - t).unwrap_or_default();
                let wall = r.wall.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                format!("{} {} at {wall} (+{since:.3?})", r.method, r.path)
            })
            .collect()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Reads one request, records it, answers it, closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else { return };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Recorded { method, path, headers, body, at: Instant::now(), wall: chrono::Utc::now() };
    lock(&shared.log).push(request.clone());

    let responder = {
        let mut routes = lock(&shared.routes);
        routes.iter_mut().rev().find(|r| r.method == request.method && request.route().starts_with(&r.prefix)).map(
            |r| {
                r.calls += 1;
                (r.responder.clone(), r.calls - 1)
            },
        )
    };
    let reply = match responder {
        Some((f, n)) => f(&request, n),
        None => Reply::json(404, r#"{"message":"Record Not Found","errors":[]}"#),
    };
    if !reply.delay.is_zero() {
        std::thread::sleep(reply.delay);
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", reply.body.len()));
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

// ----- Strava, shaped like https://developers.strava.com/docs/reference/ -----

/// Strava's `X-RateLimit-Limit` (15 minutes, daily).
pub const STRAVA_LIMIT: &str = "200,2000";
/// Strava's `X-RateLimit-Usage` in these tests: 188 and 1850 left.
pub const STRAVA_USAGE: &str = "12,150";
/// Strava's `X-ReadRateLimit-Limit`.
pub const STRAVA_READ_LIMIT: &str = "100,1000";
/// Strava's `X-ReadRateLimit-Usage` in these tests: 93 and 930 left.
pub const STRAVA_READ_USAGE: &str = "7,70";

/// Adds Strava's four rate-limit headers.
pub fn with_strava_limits(reply: Reply) -> Reply {
    reply
        .header("X-RateLimit-Limit", STRAVA_LIMIT)
        .header("X-RateLimit-Usage", STRAVA_USAGE)
        .header("X-ReadRateLimit-Limit", STRAVA_READ_LIMIT)
        .header("X-ReadRateLimit-Usage", STRAVA_READ_USAGE)
}

/// The answer of `POST /oauth/token` (grant_type refresh_token).
pub fn strava_token(access: &str, refresh: &str) -> Reply {
    let expires_at = chrono::Utc::now().timestamp() + 21_600;
    Reply::ok(&json!({
        "token_type": "Bearer",
        "access_token": access,
        "expires_at": expires_at,
        "expires_in": 21_600,
        "refresh_token": refresh,
    }))
}

/// A `SummaryActivity` as `GET /api/v3/athlete/activities` lists it.
pub fn strava_summary(id: u64, start_date: &str) -> Value {
    json!({
        "resource_state": 2,
        "athlete": {"id": 134815, "resource_state": 1},
        "name": format!("Morning Run {id}"),
        "distance": 10012.3,
        "moving_time": 3010,
        "elapsed_time": 3122,
        "total_elevation_gain": 42.5,
        "type": "Run",
        "sport_type": "Run",
        "id": id,
        "start_date": start_date,
        "start_date_local": start_date,
        "timezone": "(GMT+00:00) Europe/London",
        "achievement_count": 1,
        "kudos_count": 3,
        "average_speed": 3.326,
        "max_speed": 5.1,
        "has_heartrate": false,
    })
}

/// A `DetailedActivity` as `GET /api/v3/activities/{id}` returns it.
pub fn strava_detail(id: u64) -> Value {
    json!({
        "id": id,
        "resource_state": 3,
        "name": format!("Morning Run {id} (detail)"),
        "description": format!("detail of {id}"),
        "calories": 612.4,
        "device_name": "Garmin Forerunner 255",
        "splits_metric": [{"distance": 1000.2, "elapsed_time": 301, "split": 1}],
    })
}

/// A page of activities with the rate-limit headers.
pub fn strava_page(items: &[Value]) -> Reply {
    with_strava_limits(Reply::ok(&Value::Array(items.to_vec())))
}

// ----- JustGiving, shaped like https://api.justgiving.com/docs -----

/// `GET /{appId}/v1/fundraising/pages/{pageShortName}`.
pub fn justgiving_page(short_name: &str, raised: &str, target: &str, grand_total: &str) -> String {
    format!(
        r#"{{
  "pageId": 12345678,
  "activityType": "Running_Marathons",
  "pageShortName": "{short_name}",
  "title": "Running the marathon",
  "eventName": "London Marathon 2025",
  "status": "Active",
  "fundraisingTarget": "{target}",
  "totalRaisedOffline": "0.00",
  "totalRaisedOnline": "{raised}",
  "totalRaisedSms": "0.00",
  "totalEstimatedGiftAid": "246.91",
  "grandTotalRaisedExcludingGiftAid": "{grand_total}",
  "currencySymbol": "£",
  "currencyCode": "GBP",
  "charity": {{"id": 2116, "name": "A Charity", "registrationNumber": "1234567"}},
  "pageSummary": "Raised £{raised} of £{target}",
  "donationsEnabled": true
}}"#
    )
}
