//! The Strava source against a fake Strava on loopback.

use super::super::client::HttpClient;
use super::super::clock::TestClock;
use super::super::pushed::{ActivityChange, Change, Pushed, Verdict};
use super::super::test_server::{Canned, MemoryState, Recorded, TestServer};
use super::*;
use crate::domain::{Checksum, Document};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const T0: &str = "2024-05-01T10:07:13Z";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0).unwrap().to_utc()
}

/// A fake Strava: tokens handed out in order, pages, details, forced answers.
#[derive(Default)]
struct Upstream {
    /// (access, refresh, expires_at) per token call; the last one repeats.
    tokens: Mutex<VecDeque<(&'static str, &'static str, i64)>>,
    valid_access: Mutex<Vec<String>>,
    pages: Vec<Value>,
    /// Listed by an `after=` query when they started later.
    newer: Vec<Value>,
    details: HashMap<String, Value>,
    /// Answers to the next API GETs, before normal routing.
    forced: Mutex<VecDeque<Canned>>,
    /// (limit, usage before the first call) of the 15-minute read window.
    read_budget: Option<(i64, i64)>,
    api_calls: AtomicUsize,
    events: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn handle(&self, req: &Recorded) -> Canned {
        let mut events = self.events.lock().unwrap();
        if req.method == "POST" && req.route() == "/oauth/token" {
            events.push(format!("token {}", req.form("refresh_token").unwrap_or_default()));
            let mut tokens = self.tokens.lock().unwrap();
            let (access, refresh, expires_at) =
                if tokens.len() > 1 { tokens.pop_front() } else { tokens.front().copied() }.unwrap();
            self.valid_access.lock().unwrap().push(format!("Bearer {access}"));
            let body = json!({"token_type": "Bearer", "access_token": access, "refresh_token": refresh,
                "expires_at": expires_at, "expires_in": 21600});
            return Canned::json(200, body.to_string());
        }
        let n = self.api_calls.fetch_add(1, Ordering::SeqCst) as i64 + 1;
        let auth = req.header("authorization").unwrap_or("").to_owned();
        events.push(format!("GET {} {auth}", req.path));
        let answer = if let Some(forced) = self.forced.lock().unwrap().pop_front() {
            forced
        } else if !self.valid_access.lock().unwrap().contains(&auth) {
            Canned::json(401, r#"{"message":"Authorization Error"}"#)
        } else if let (true, Some(after)) = (req.route() == "/api/v3/athlete/activities", req.query("after")) {
            let after: i64 = after.parse().unwrap();
            let items: Vec<Value> = self
                .newer
                .iter()
                .filter(|a| {
                    DateTime::parse_from_rfc3339(a["start_date"].as_str().unwrap()).unwrap().timestamp() > after
                })
                .cloned()
                .collect();
            let page: usize = req.query("page").unwrap().parse().unwrap();
            Canned::json(200, json!(if page == 1 { items } else { vec![] }).to_string())
        } else if req.route() == "/api/v3/athlete/activities" {
            let page: usize = req.query("page").unwrap().parse().unwrap();
            Canned::json(200, self.pages.get(page - 1).cloned().unwrap_or(json!([])).to_string())
        } else if req.route() == "/api/v3/athlete" {
            Canned::json(200, r#"{"id": 134815}"#)
        } else if let Some(id) = req.route().strip_prefix("/api/v3/activities/") {
            match self.details.get(id) {
                Some(detail) => Canned::json(200, detail.to_string()),
                None => Canned::json(404, r#"{"message":"Record Not Found"}"#),
            }
        } else {
            Canned::json(404, "{}")
        };
        match self.read_budget {
            Some((limit, usage)) => answer
                .header("X-ReadRateLimit-Limit", &format!("{limit},{}", limit * 10))
                .header("X-ReadRateLimit-Usage", &format!("{},{}", usage + n, usage + n)),
            None => answer,
        }
    }
}

struct Rig {
    upstream: Arc<Upstream>,
    server: TestServer,
    state: Arc<MemoryState>,
    clock: Arc<TestClock>,
    token_file: tempfile::TempDir,
}

impl Rig {
    fn new(upstream: Upstream) -> Self {
        let upstream = Arc::new(upstream);
        let handler = upstream.clone();
        let server = TestServer::start(move |req| handler.handle(req));
        let state = Arc::new(MemoryState::with_events(upstream.events.clone()));
        let clock = Arc::new(TestClock::new(t0()));
        Self { upstream, server, state, clock, token_file: tempfile::tempdir().unwrap() }
    }

    fn token_path(&self) -> PathBuf {
        self.token_file.path().join("strava_refresh_token")
    }

    /// A new source, as after a restart: nothing in memory.
    fn source(&self) -> StravaSource {
        let settings = Settings {
            client_id: "12345".into(),
            client_secret: "s3cret".into(),
            refresh_token: "configured-refresh".into(),
            refresh_token_file: Some(self.token_path()),
            base_url: self.server.base_url() + "/",
            per_page: 2,
            full_refresh_every: Duration::from_secs(86400),
            learn_athlete: false,
        };
        let cache = CacheName::parse("strava").unwrap();
        StravaSource::new(cache, settings, self.state.clone(), self.clock.clone(), HttpClient::new())
    }

    /// Upstream calls and token saves (the sync state's saves are checked on their own).
    fn events(&self) -> Vec<String> {
        self.upstream.events.lock().unwrap().iter().filter(|e| !e.starts_with("save stravasync:")).cloned().collect()
    }

    fn list_calls(&self) -> Vec<String> {
        self.events().into_iter().filter(|e| e.starts_with("GET /api/v3/athlete/activities")).collect()
    }
}

fn request(rich: bool, previous: Option<&Value>) -> FetchRequest {
    let previous = previous.map(|v| {
        let body = serde_json::to_vec(v).unwrap();
        let name = CacheName::parse("strava").unwrap();
        Arc::new(Document::new(name, 1, Checksum::of(&body), None, None, Utc::now(), body.into()))
    });
    FetchRequest { rich, previous, ..FetchRequest::plain(Duration::from_secs(10)) }
}

fn ids(body: &[u8]) -> Vec<i64> {
    let doc: Value = serde_json::from_slice(body).unwrap();
    doc["activities"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect()
}

fn activity(id: i64, start: &str) -> Value {
    json!({"id": id, "name": format!("Run {id}"), "start_date": start, "distance": 5012.3, "resource_state": 2})
}

fn in_6h() -> i64 {
    (t0() + chrono::Duration::hours(6)).timestamp()
}

#[tokio::test]
async fn rotated_token_is_saved_before_use_and_pages_are_assembled_in_order() {
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "rotated-1", in_6h()), ("access-2", "rotated-1", in_6h() + 21600)].into()),
        pages: vec![
            json!([activity(3, "2024-04-30T07:00:00Z"), activity(2, "2024-04-29T07:00:00Z")]),
            json!([activity(1, "2024-04-28T07:00:00Z")]),
        ],
        ..Upstream::default()
    });
    let source = rig.source();
    let fetched = source.fetch(request(false, None)).await.unwrap();

    let doc: Value = serde_json::from_slice(&fetched.body).unwrap();
    assert_eq!(doc["timestamp"], "2024-05-01T10:07:13Z");
    assert_eq!(ids(&fetched.body), [3, 2, 1]);
    let activities_path = "/api/v3/athlete/activities";
    assert_eq!(
        rig.events(),
        [
            "token configured-refresh".to_owned(),
            "save strava:strava rotated-1".to_owned(),
            format!("GET {activities_path}?page=1&per_page=2 Bearer access-1"),
            format!("GET {activities_path}?page=2&per_page=2 Bearer access-1"),
            format!("GET {activities_path}?page=3&per_page=2 Bearer access-1"),
        ]
    );
    let token_call = &rig.server.requests()[0];
    assert_eq!(token_call.form("client_id").as_deref(), Some("12345"));
    assert_eq!(token_call.form("client_secret").as_deref(), Some("s3cret"));
    assert_eq!(token_call.form("grant_type").as_deref(), Some("refresh_token"));
    let saved = rig.state.saved.lock().unwrap()["strava:strava"].clone();
    assert_eq!(saved["refresh_token"], "rotated-1");
    assert_eq!(saved["rotated_at"], "2024-05-01T10:07:13Z");
    assert_eq!(std::fs::read_to_string(rig.token_path()).unwrap().trim(), "rotated-1");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(rig.token_path()).unwrap().permissions().mode() & 0o777, 0o600);

    // The access token is reused until a minute before it expires.
    source.fetch(request(false, None)).await.unwrap();
    assert_eq!(rig.events().iter().filter(|e| e.starts_with("token")).count(), 1);
    rig.clock.advance(chrono::Duration::hours(6) - chrono::Duration::seconds(59));
    source.fetch(request(false, None)).await.unwrap();
    assert_eq!(rig.events().iter().filter(|e| e.starts_with("token")).count(), 2);
    assert!(rig.events().contains(&"token rotated-1".to_owned()), "{:?}", rig.events());
    assert!(rig.events().last().unwrap().ends_with("Bearer access-2"), "{:?}", rig.events());
    assert_eq!(rig.events().iter().filter(|e| e.starts_with("save")).count(), 1, "same token: not saved again");
}

#[tokio::test]
async fn a_restart_uses_the_saved_rotated_token() {
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "rotated-1", in_6h()), ("access-2", "rotated-2", in_6h())].into()),
        ..Upstream::default()
    });
    rig.source().fetch(request(false, None)).await.unwrap();
    // A new source (as after kill -9) with the configured token still the old one.
    rig.source().fetch(request(false, None)).await.unwrap();
    let tokens: Vec<_> = rig.events().into_iter().filter(|e| !e.starts_with("GET")).collect();
    assert_eq!(
        tokens,
        ["token configured-refresh", "save strava:strava rotated-1", "token rotated-1", "save strava:strava rotated-2"]
    );
}

#[tokio::test]
async fn a_failed_save_means_the_new_access_token_is_not_used() {
    let rig =
        Rig::new(Upstream { tokens: Mutex::new([("access-1", "rotated-1", in_6h())].into()), ..Upstream::default() });
    rig.state.fail.store(true, Ordering::SeqCst);
    let source = rig.source();
    let err = source.fetch(request(false, None)).await.unwrap_err();
    assert!(matches!(&err, SourceError::Transient(m) if m.contains("could not save")), "{err:?}");
    assert!(!rig.events().iter().any(|e| e.starts_with("GET")), "{:?}", rig.events());
    // Next time the rotated token is sent, and saved once the store works.
    rig.state.fail.store(false, Ordering::SeqCst);
    source.fetch(request(false, None)).await.unwrap();
    assert_eq!(rig.events()[..2], ["token configured-refresh", "token rotated-1"]);
    assert_eq!(rig.events()[2], "save strava:strava rotated-1");
}

#[tokio::test]
async fn a_401_renews_the_token_once_then_gives_up() {
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h()), ("access-2", "r", in_6h())].into()),
        forced: Mutex::new([Canned::json(401, "{}")].into()),
        ..Upstream::default()
    });
    let source = rig.source();
    source.fetch(request(false, None)).await.unwrap();
    let gets: Vec<_> = rig.events().into_iter().filter(|e| e.starts_with("GET")).collect();
    assert!(gets[0].ends_with("access-1") && gets[1].ends_with("access-2"), "{gets:?}");

    rig.upstream.forced.lock().unwrap().extend([Canned::json(401, "{}"), Canned::json(401, "{}")]);
    let err = source.fetch(request(false, None)).await.unwrap_err();
    assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn a_refused_saved_token_falls_back_to_the_configured_one() {
    let rig = Rig::new(Upstream { tokens: Mutex::new([("a", "r2", in_6h())].into()), ..Upstream::default() });
    rig.state.saved.lock().unwrap().insert("strava:strava".into(), json!({"refresh_token": "stale"}));
    let server = TestServer::start({
        let upstream = rig.upstream.clone();
        move |req| {
            if req.form("refresh_token").as_deref() == Some("stale") {
                Canned::json(400, r#"{"message":"Bad Request"}"#)
            } else {
                upstream.handle(req)
            }
        }
    });
    let mut source = rig.source();
    source.settings.base_url = server.base_url();
    source.fetch(request(false, None)).await.unwrap();
    let sent: Vec<_> =
        server.requests().iter().filter(|r| r.method == "POST").map(|r| r.form("refresh_token").unwrap()).collect();
    assert_eq!(sent, ["stale", "configured-refresh"]);
}

#[tokio::test]
async fn a_429_waits_for_the_next_quarter_hour_and_makes_no_call_until_then() {
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        forced: Mutex::new([Canned::json(429, r#"{"message":"Rate Limit Exceeded"}"#)].into()),
        ..Upstream::default()
    });
    let source = rig.source();
    let err = source.fetch(request(false, None)).await.unwrap_err();
    let next = DateTime::parse_from_rfc3339("2024-05-01T10:15:00Z").unwrap().to_utc();
    assert!(matches!(err, SourceError::RateLimited { until } if until == next), "{err:?}");

    let calls = rig.server.requests().len();
    rig.clock.advance(chrono::Duration::minutes(5));
    let err = source.fetch(request(false, None)).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { until } if until == next), "{err:?}");
    assert_eq!(rig.server.requests().len(), calls, "no call before the window resets");

    rig.clock.set(next);
    source.fetch(request(false, None)).await.unwrap();
}

#[tokio::test]
async fn a_429_with_the_daily_window_spent_waits_for_midnight() {
    let spent = Canned::json(429, "{}").header("X-RateLimit-Limit", "200,2000").header("X-RateLimit-Usage", "201,2001");
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        forced: Mutex::new([spent].into()),
        ..Upstream::default()
    });
    let err = rig.source().fetch(request(false, None)).await.unwrap_err();
    let midnight = DateTime::parse_from_rfc3339("2024-05-02T00:00:00Z").unwrap().to_utc();
    assert!(matches!(err, SourceError::RateLimited { until } if until == midnight), "{err:?}");
}

#[tokio::test]
async fn a_spent_budget_means_no_call() {
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        // The one call of the first fetch uses the last request of the window.
        read_budget: Some((100, 99)),
        ..Upstream::default()
    });
    let source = rig.source();
    let fetched = source.fetch(request(false, None)).await.unwrap();
    assert!(fetched.rate_limits.contains(&crate::refresher::sources::RateLimit { window: "read_15m", remaining: 0 }));
    let calls = rig.server.requests().len();
    let err = source.fetch(request(false, None)).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err:?}");
    assert_eq!(rig.server.requests().len(), calls);
}

#[tokio::test]
async fn rich_refresh_merges_detail_within_the_budget_and_keeps_old_detail() {
    let mut details = HashMap::new();
    details.insert("3".into(), json!({"id": 3, "name": "Run 3 (detail)", "description": "fresh", "resource_state": 3}));
    details.insert("2".into(), json!({"id": 2, "description": "must not be fetched"}));
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        pages: vec![json!([
            activity(2, "2024-04-29T07:00:00Z"),
            activity(3, "2024-04-30T07:00:00Z"),
            activity(1, "2024-04-28T07:00:00Z")
        ])],
        details,
        // After the two page calls: 11 left, a tenth of 100 kept back: one detail call.
        read_budget: Some((100, 87)),
        ..Upstream::default()
    });
    let previous = json!({"timestamp": "2024-04-30T00:00:00Z", "activities": [
        {"id": 1, "name": "old name", "description": "kept from before", "resource_state": 3},
        {"id": 99, "description": "gone upstream"}
    ]});
    let fetched = rig.source().fetch(request(true, Some(&previous))).await.unwrap();
    let doc: Value = serde_json::from_slice(&fetched.body).unwrap();
    let acts = doc["activities"].as_array().unwrap();
    assert_eq!(ids(&fetched.body), [2, 3, 1], "list order is kept");
    // The newest one got its detail; detail fields win over the summary's.
    assert_eq!(acts[1]["name"], "Run 3 (detail)");
    assert_eq!(acts[1]["description"], "fresh");
    assert_eq!(acts[1]["distance"], 5012.3);
    assert_eq!(acts[1]["resource_state"], 3);
    // Not refreshed: no detail, or the detail it had before under the new summary.
    assert!(acts[0].get("description").is_none());
    assert_eq!(acts[2]["description"], "kept from before");
    assert_eq!(acts[2]["name"], "Run 1");
    let detail_calls: Vec<_> = rig.events().into_iter().filter(|e| e.starts_with("GET /api/v3/activities/")).collect();
    assert_eq!(detail_calls, ["GET /api/v3/activities/3 Bearer access-1"]);
}

#[tokio::test]
async fn rich_refresh_without_budget_headers_is_capped() {
    let pages: Vec<Value> = (0..3)
        .map(|p| Value::Array((0..25).map(|i| activity(1000 - (p * 25 + i), "2024-04-01T00:00:00Z")).collect()))
        .collect();
    let rig =
        Rig::new(Upstream { tokens: Mutex::new([("access-1", "r", in_6h())].into()), pages, ..Upstream::default() });
    let mut source = rig.source();
    source.settings.per_page = 25;
    let fetched = source.fetch(request(true, None)).await.unwrap();
    assert_eq!(ids(&fetched.body).len(), 75);
    let detail_calls = rig.events().iter().filter(|e| e.starts_with("GET /api/v3/activities/")).count();
    assert_eq!(detail_calls, MAX_DETAILS);
}

fn full_request(previous: &Value) -> FetchRequest {
    FetchRequest { full: true, ..request(false, Some(previous)) }
}

fn held() -> Value {
    json!({"timestamp": "2024-05-01T09:00:00Z", "activities": [
        {"id": 3, "name": "Run 3", "start_date": "2024-04-30T07:00:00Z", "description": "detail kept"},
        activity(2, "2024-04-29T07:00:00Z"),
    ]})
}

fn incremental_rig() -> Rig {
    Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        pages: vec![json!([activity(3, "2024-04-30T07:00:00Z"), activity(2, "2024-04-29T07:00:00Z")])],
        newer: vec![activity(4, "2024-05-01T08:00:00Z"), activity(3, "2024-04-30T07:00:00Z")],
        ..Upstream::default()
    })
}

#[tokio::test]
async fn after_a_full_read_a_refresh_asks_only_for_newer_activities_and_merges_them() {
    let rig = incremental_rig();
    let source = rig.source();
    // Nothing recorded (a first start): the whole list, and the time of it is kept.
    source.fetch(request(false, Some(&held()))).await.unwrap();
    assert_eq!(rig.list_calls().len(), 2, "{:?}", rig.list_calls());
    let sync = rig.state.saved.lock().unwrap()["stravasync:strava"].clone();
    assert_eq!(sync["last_full_refresh"], T0);

    rig.clock.advance(chrono::Duration::hours(6));
    let fetched = source.fetch(request(false, Some(&held()))).await.unwrap();
    // A week before the newest activity held (INCREMENTAL_OVERLAP).
    let after = DateTime::parse_from_rfc3339("2024-04-23T07:00:00Z").unwrap().timestamp();
    assert_eq!(
        rig.list_calls()[2..],
        [
            format!("GET /api/v3/athlete/activities?after={after}&page=1&per_page=2 Bearer access-1"),
            format!("GET /api/v3/athlete/activities?after={after}&page=2&per_page=2 Bearer access-1"),
        ],
        "a full page, then an empty one ends the incremental read"
    );
    assert_eq!(ids(&fetched.body), [4, 3, 2]);
    let doc: Value = serde_json::from_slice(&fetched.body).unwrap();
    assert_eq!(doc["activities"][1]["description"], "detail kept");
    assert_eq!(doc["timestamp"], "2024-05-01T16:07:13Z");

    // A new source (a restart) remembers the full read: still incremental.
    rig.source().fetch(request(false, Some(&held()))).await.unwrap();
    assert!(rig.list_calls().last().unwrap().contains("after="), "{:?}", rig.list_calls());
}

#[tokio::test]
async fn a_full_read_runs_when_asked_and_every_full_refresh_every() {
    let rig = incremental_rig();
    let source = rig.source();
    source.fetch(request(false, Some(&held()))).await.unwrap();
    let calls = rig.list_calls().len();

    // Asked for (POST .../refresh?full=true): no after=, and an activity gone upstream goes.
    let mut previous = held();
    previous["activities"].as_array_mut().unwrap().push(activity(1, "2024-04-01T07:00:00Z"));
    let fetched = source.fetch(full_request(&previous)).await.unwrap();
    assert!(rig.list_calls()[calls..].iter().all(|c| !c.contains("after=")), "{:?}", rig.list_calls());
    assert_eq!(ids(&fetched.body), [3, 2]);

    // A day after the last full read: the next refresh is full again.
    rig.clock.advance(chrono::Duration::hours(23));
    source.fetch(request(false, Some(&held()))).await.unwrap();
    assert!(rig.list_calls().last().unwrap().contains("after="));
    rig.clock.advance(chrono::Duration::hours(1));
    let calls = rig.list_calls().len();
    source.fetch(request(false, Some(&held()))).await.unwrap();
    assert!(rig.list_calls()[calls..].iter().all(|c| !c.contains("after=")), "{:?}", rig.list_calls());
}

#[tokio::test]
async fn an_incremental_read_overlaps_a_week_and_never_asks_after_now() {
    // An activity uploaded late (started 3 days before the newest one held) is listed.
    let late = activity(5, "2024-04-27T07:00:00Z");
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        pages: vec![json!([activity(3, "2024-04-30T07:00:00Z"), activity(2, "2024-04-29T07:00:00Z")])],
        newer: vec![activity(3, "2024-04-30T07:00:00Z"), late.clone()],
        ..Upstream::default()
    });
    let source = rig.source();
    source.fetch(request(false, Some(&held()))).await.unwrap();
    rig.clock.advance(chrono::Duration::hours(6));
    let fetched = source.fetch(request(false, Some(&held()))).await.unwrap();
    assert_eq!(ids(&fetched.body), [3, 2, 5], "the late upload is in, where its start date puts it");

    // One activity dated in the future: after= is a week before now, not 2030.
    let mut future = held();
    future["activities"].as_array_mut().unwrap().insert(0, activity(9, "2030-01-01T00:00:00Z"));
    rig.clock.advance(chrono::Duration::hours(6));
    source.fetch(request(false, Some(&future))).await.unwrap();
    let now = rig.clock.now().timestamp();
    let after = now - INCREMENTAL_OVERLAP.as_secs() as i64;
    assert!(rig.list_calls().last().unwrap().contains(&format!("after={after}&")), "{:?}", rig.list_calls());
}

fn pushed_request(previous: &Value, changes: Vec<ActivityChange>) -> FetchRequest {
    let pushed = Pushed { changes, ..Pushed::default() };
    FetchRequest { push_only: true, pushed, ..request(false, Some(previous)) }
}

fn change(id: u64, change: Change) -> ActivityChange {
    ActivityChange { id, change }
}

#[tokio::test]
async fn pushed_ids_are_only_believed_once_strava_lists_them() {
    let mut details = HashMap::new();
    details.insert("2".to_owned(), json!({"id": 2, "name": "Run 2, renamed", "start_date": "2024-04-29T07:00:00Z"}));
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        // Activity 3 was deleted upstream: not listed any more.
        newer: vec![activity(4, "2024-05-01T08:00:00Z")],
        details,
        ..Upstream::default()
    });
    let source2 = rig.source();
    let previous = held();
    // A create Strava lists, a create it does not have, a delete, an update of a held one.
    let fetched = source2
        .fetch(pushed_request(
            &previous,
            vec![
                change(4, Change::Create),
                change(77, Change::Create),
                change(3, Change::Delete),
                change(2, Change::Update),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(ids(&fetched.body), [4, 2]);
    let doc: Value = serde_json::from_slice(&fetched.body).unwrap();
    assert_eq!(doc["activities"][1]["name"], "Run 2, renamed");
    let report = source2.take_push_report();
    assert_eq!((report.missing, report.fruitless), (vec![77], false));
    let gets: Vec<String> = rig.events().into_iter().filter(|e| e.starts_with("GET")).collect();
    assert_eq!(gets.len(), 2, "one list read and one detail call: {gets:?}");

    // Only forged ids: one list read that finds nothing new, and nothing changes.
    let current: Value = serde_json::from_slice(&fetched.body).unwrap();
    let fetched = source2.fetch(pushed_request(&current, vec![change(77, Change::Update)])).await.unwrap();
    assert!(fetched.not_modified, "nothing changed");
    let report = source2.take_push_report();
    assert_eq!((report.missing, report.fruitless), (vec![77], true));
}

#[tokio::test]
async fn pushed_updates_beyond_the_per_fetch_cap_are_carried_over() {
    let n = MAX_DETAILS as i64 + 5;
    let held: Vec<Value> = (1..=n).rev().map(|id| activity(id, "2024-04-29T07:00:00Z")).collect();
    let details = (1..=n).map(|id| (id.to_string(), activity(id, "2024-04-29T07:00:00Z"))).collect();
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        details,
        read_budget: Some((1000, 0)),
        ..Upstream::default()
    });
    let source = rig.source();
    let changes = (1..=n as u64).map(|id| change(id, Change::Update)).collect();
    source.fetch(pushed_request(&json!({"activities": held}), changes)).await.unwrap();
    let report = source.take_push_report();
    assert_eq!(report.carried.len(), 5, "{report:?}");
    assert!(report.carried.iter().all(|c| c.change == Change::Update));
}

#[tokio::test]
async fn pushed_work_spends_only_its_share_of_the_budget() {
    // 40 reads left in the window: pushed work may spend 10 of them.
    let n = 30i64;
    let held: Vec<Value> = (1..=n).rev().map(|id| activity(id, "2024-04-29T07:00:00Z")).collect();
    let details = (1..=n).map(|id| (id.to_string(), activity(id, "2024-04-29T07:00:00Z"))).collect();
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        details,
        read_budget: Some((100, 60)),
        ..Upstream::default()
    });
    let source = rig.source();
    let changes = (1..=n as u64).map(|id| change(id, Change::Update)).collect();
    source.fetch(pushed_request(&json!({"activities": held}), changes)).await.unwrap();
    let report = source.take_push_report();
    let gets = rig.events().into_iter().filter(|e| e.starts_with("GET")).count();
    assert!((9..=11).contains(&gets), "{gets} calls");
    assert_eq!(report.carried.len(), n as usize - gets, "{report:?}");
    assert!(report.share_spent_until.is_some());
    assert!(source.pushed_share_left().is_err());
    // A scheduled refresh still may call.
    source.fetch(request(false, Some(&json!({"activities": []})))).await.unwrap();
}

/// A source whose token endpoint answers `status` with `body`, over a fake Strava.
fn refusing_source(rig: &Rig, status: u16, body: &'static str) -> (StravaSource, TestServer) {
    let server = TestServer::start({
        let upstream = rig.upstream.clone();
        move |req| if req.method == "POST" { Canned::json(status, body) } else { upstream.handle(req) }
    });
    let mut source = rig.source();
    source.settings.base_url = server.base_url();
    (source, server)
}

#[tokio::test]
async fn a_client_refusal_keeps_stravas_words_and_is_no_deauthorization() {
    let rig = Rig::new(Upstream::default());
    let body = r#"{"message":"Authorization Error","errors":[{"resource":"Application","field":"client_secret","code":"invalid"}]}"#;
    let (source, _server) = refusing_source(&rig, 401, body);
    let err = source.fetch(request(false, None)).await.unwrap_err();
    let SourceError::Permanent(message) = &err else { panic!("{err:?}") };
    assert!(
        message.contains("client credentials") && message.contains("Application client_secret invalid"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!source.revoked().await);
}

#[tokio::test]
async fn a_refresh_token_refused_everywhere_is_a_deauthorization_that_keeps_the_operators_file() {
    let rig = Rig::new(Upstream::default());
    std::fs::write(rig.token_path(), "configured-refresh\n").unwrap();
    rig.state.saved.lock().unwrap().insert("strava:strava".into(), json!({"refresh_token": "rotated-1"}));
    let body =
        r#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#;
    let (source, server) = refusing_source(&rig, 400, body);
    let err = source.fetch(request(false, None)).await.unwrap_err();
    assert!(matches!(err, SourceError::Revoked), "{err:?}");
    let sent: Vec<_> =
        server.requests().iter().filter(|r| r.method == "POST").filter_map(|r| r.form("refresh_token")).collect();
    assert_eq!(sent, ["rotated-1", "configured-refresh"], "every candidate is tried first");

    let recorded = source.forget().await.unwrap();
    assert!(recorded.why.contains("RefreshToken refresh_token invalid"), "{recorded:?}");
    assert!(rig.token_path().exists(), "the operator's file is never deleted");
    assert!(!rig.state.saved.lock().unwrap().contains_key("strava:strava"), "the stored token is");
    // A restart with the same token (or the rotated one) stays deauthorized; a new one lifts it.
    assert!(rig.source().revoked().await);
    let mut rotated = rig.source();
    rotated.settings.refresh_token = "rotated-1".into();
    assert!(rotated.revoked().await, "the rotated token was known then");
    let mut fresh = rig.source();
    fresh.settings.refresh_token = "new-after-reauthorizing".into();
    assert!(!fresh.revoked().await);
}

fn confirm_request(previous: &Value) -> FetchRequest {
    let pushed = Pushed { confirm_deauthorization: true, ..Pushed::default() };
    FetchRequest { push_only: true, pushed, ..request(false, Some(previous)) }
}

#[tokio::test]
async fn a_deauthorization_is_confirmed_only_by_strava() {
    // Strava still serves the athlete: refuted, nothing changes, one call.
    let rig = Rig::new(Upstream { tokens: Mutex::new([("access-1", "r", in_6h())].into()), ..Upstream::default() });
    let source = rig.source();
    let fetched = source.fetch(confirm_request(&held())).await.unwrap();
    assert!(fetched.not_modified);
    assert!(matches!(source.take_push_report().verdict, Some(Verdict::Refuted(_))));
    assert!(!source.revoked().await);

    // GET /athlete refuses the token, and the renewed one too: confirmed.
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h()), ("access-2", "r", in_6h())].into()),
        forced: Mutex::new([Canned::json(401, "{}"), Canned::json(401, "{}")].into()),
        ..Upstream::default()
    });
    let source = rig.source();
    let err = source.fetch(confirm_request(&held())).await.unwrap_err();
    assert!(matches!(err, SourceError::Revoked), "{err:?}");
    assert!(matches!(source.take_push_report().verdict, Some(Verdict::Confirmed(_))));

    // Strava down: unknown, nothing changes.
    let rig = Rig::new(Upstream {
        tokens: Mutex::new([("access-1", "r", in_6h())].into()),
        forced: Mutex::new([Canned::json(503, "{}")].into()),
        ..Upstream::default()
    });
    let source = rig.source();
    source.fetch(confirm_request(&held())).await.unwrap();
    assert!(matches!(source.take_push_report().verdict, Some(Verdict::Unknown(_))));
}
