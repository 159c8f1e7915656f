//! The fake upstreams of the run, on one local server: a Strava (token, athlete,
//! activity list, slow activity detail) whose activities the workload changes as it
//! posts webhook events, and a JSON feed for the `http` cache whose every answer is
//! unique. It remembers what the checks need: every activity id that ever existed
//! upstream, when each full list read began, and when each feed answer was asked for.

use super::record::Recorder;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tiercache_testkit::fake_http::{FakeServer, Recorded, Reply};

/// The athlete of the Strava cache.
pub const ATHLETE: u64 = 134815;

/// What the fake serves and what it saw.
#[derive(Default)]
pub struct State {
    /// Upstream activities, newest first.
    pub activities: Vec<Value>,
    /// Every id that was ever upstream.
    pub ever: BTreeSet<u64>,
    /// The next new activity's id.
    pub next_id: u64,
    /// Arrival (seconds since the run began) of each list read without `after=`.
    pub full_reads: Vec<f64>,
    /// Feed answer number → when it was asked for.
    pub feed: BTreeMap<u64, f64>,
    /// Calls of the detail route (for the summary).
    pub details: u64,
    /// Calls of the list route with `after=`.
    pub incremental_reads: u64,
    /// A counter for the answers' pseudo-random delays.
    tick: u64,
}

impl State {
    /// A delay in `lo..hi` ms, varied per call.
    fn delay(&mut self, lo: u64, hi: u64) -> Duration {
        self.tick = self.tick.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Duration::from_millis(lo + (self.tick >> 33) % (hi - lo))
    }
}

/// An activity as the list shows it; `id` decides its start date (an hour apart from
/// 2020-01-01), so newer ids are newer activities.
pub fn activity(id: u64, name: &str) -> Value {
    let start =
        chrono::DateTime::parse_from_rfc3339("2020-01-01T07:00:00Z").unwrap() + chrono::Duration::hours(id as i64);
    let start = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"id": id, "name": name, "type": "Run", "start_date": start, "athlete": {"id": ATHLETE}, "resource_state": 2})
}

/// The server and its state.
pub struct Upstream {
    pub server: FakeServer,
    pub state: Arc<Mutex<State>>,
}

impl Upstream {
    /// Serves activities `1..=n`.
    pub fn start(rec: &Recorder, n: u64) -> Self {
        let state = Arc::new(Mutex::new(State {
            activities: (1..=n).rev().map(|id| activity(id, &format!("Run {id}"))).collect(),
            ever: (1..=n).collect(),
            next_id: n + 1,
            ..State::default()
        }));
        let (shared, rec) = (state.clone(), rec.clone());
        let server = FakeServer::start(move |req| answer(req, &mut lock(&shared), &rec));
        Self { server, state }
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn answer(req: &Recorded, s: &mut State, rec: &Recorder) -> Reply {
    let route = req.route();
    match (req.method.as_str(), route) {
        ("POST", "/oauth/token") => Reply::ok(&json!({
            "token_type": "Bearer", "access_token": "access-1", "refresh_token": "rotated-1",
            "expires_in": 21600, "expires_at": chrono::Utc::now().timestamp() + 21600,
        })),
        ("GET", "/api/v3/athlete") => Reply::ok(&json!({"id": ATHLETE, "username": "runner"})),
        ("GET", "/api/v3/athlete/activities") => {
            let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per_page: usize = req.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
            let mut items = s.activities.clone();
            match req.query("after").and_then(|a| a.parse::<i64>().ok()) {
                Some(after) => {
                    s.incremental_reads += 1;
                    items.retain(|x| {
                        let start = chrono::DateTime::parse_from_rfc3339(x["start_date"].as_str().unwrap_or(""));
                        start.is_ok_and(|t| t.timestamp() > after)
                    });
                    items.reverse();
                }
                None if page == 1 => s.full_reads.push(rec.secs(req.at)),
                None => {}
            }
            let page: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
            Reply::ok(&Value::Array(page)).delay(s.delay(0, 300))
        }
        ("GET", _) if route.starts_with("/api/v3/activities/") => {
            s.details += 1;
            let id = route.trim_start_matches("/api/v3/activities/").parse::<u64>().ok();
            let found = s.activities.iter().find(|a| id.is_some_and(|id| a["id"] == id)).cloned();
            let delay = s.delay(100, 800);
            match found {
                Some(mut detail) => {
                    detail["description"] = json!(format!("detail of {}", detail["id"]));
                    detail["resource_state"] = json!(3);
                    Reply::ok(&detail).delay(delay)
                }
                None => Reply::json(404, r#"{"message":"Record Not Found"}"#).delay(delay),
            }
        }
        ("GET", "/feed") => {
            let serial = s.feed.len() as u64 + 1;
            s.feed.insert(serial, rec.secs(req.at));
            Reply::ok(&json!({"feed": serial})).delay(s.delay(0, 1500))
        }
        _ => Reply::json(404, r#"{"message":"Record Not Found"}"#),
    }
}
