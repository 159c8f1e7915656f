//! A small fake upstream for the refresher's tests: testkit's `FakeServer` (a real
//! HTTP/1.1 server on `127.0.0.1:0` that records every request) with a route table.
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tiercache_testkit::fake_http::FakeServer;
pub use tiercache_testkit::fake_http::{Recorded, Reply};

/// Computes an answer from the request and its call number on this route (0-based).
type Responder = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

struct Route {
    method: String,
    prefix: String,
    responder: Responder,
    calls: usize,
}

/// The fake upstream; it stops accepting when dropped.
pub struct FakeUpstream {
    server: FakeServer,
    routes: Arc<Mutex<Vec<Route>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeUpstream {
    /// Starts a server with no routes (everything answers 404).
    pub fn start() -> Self {
        let routes: Arc<Mutex<Vec<Route>>> = Arc::default();
        let table = routes.clone();
        let server = FakeServer::start(move |request| {
            let responder = {
                let mut routes = lock(&table);
                routes
                    .iter_mut()
                    .rev()
                    .find(|r| r.method == request.method && request.route().starts_with(&r.prefix))
                    .map(|r| {
                        r.calls += 1;
                        (r.responder.clone(), r.calls - 1)
                    })
            };
            match responder {
                Some((f, n)) => f(request, n),
                None => Reply::json(404, r#"{"message":"Record Not Found","errors":[]}"#),
            }
        });
        Self { server, routes }
    }

    /// `http://127.0.0.1:PORT` (what the sources call `base_url`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The base URL followed by `path`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Answers requests of `method` whose path (without query) starts with `prefix`
    /// with `reply`; replaces a route of the same method and prefix (and its call count).
    pub fn route(&self, method: &str, prefix: &str, reply: Reply) {
        self.route_fn(method, prefix, move |_, _| reply.clone());
    }

    /// Like [`Self::route`] with an answer computed from the request and its call
    /// number on this route (0-based).
    pub fn route_fn(&self, method: &str, prefix: &str, f: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) {
        let mut routes = lock(&self.routes);
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
        self.server.requests()
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
