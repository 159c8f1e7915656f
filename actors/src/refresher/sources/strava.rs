//! `kind = "strava"`: the athlete's activities, with per-activity detail on rich refreshes.
//!
//! Strava may rotate the refresh token on every token refresh and the old one may stop
//! working, so a rotated token is saved (StateStore, then `refresh_token_file`) before
//! the access token that came with it is used: a crash at any point leaves a usable
//! token on disk.

use super::client::{status_error, Deadline, HttpClient, Request, Response};
use super::clock::Clock;
use super::ratelimit::{self, Budget};
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError, StateStore};
use crate::domain::CacheName;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Most detail calls in one rich refresh.
pub const MAX_DETAILS: usize = 50;
/// A runaway pager is a bug upstream, not a reason to spend the whole budget.
const MAX_PAGES: u32 = 1000;
/// Access tokens are renewed this long before they expire.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// What the source needs from its configuration.
#[derive(Clone)]
pub struct Settings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The configured refresh token (used only until a rotated one has been saved).
    pub refresh_token: String,
    /// Also kept up to date with the rotated token, if set.
    pub refresh_token_file: Option<PathBuf>,
    /// Scheme, host and port, e.g. `https://www.strava.com`.
    pub base_url: String,
    /// Activities per page (Strava allows up to 200).
    pub per_page: u32,
}

/// The Strava source of one cache.
pub struct StravaSource {
    cache: CacheName,
    settings: Settings,
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    tokens: tokio::sync::Mutex<Tokens>,
    budget: Mutex<Budget>,
}

#[derive(Default)]
struct Tokens {
    loaded: bool,
    /// The refresh token to send next.
    refresh: String,
    /// Older candidates to fall back on if `refresh` is refused (e.g. the configured
    /// token was replaced by re-authorising the app after one was saved).
    fallbacks: Vec<String>,
    /// The refresh token known to be durable (saved, or configured).
    durable: Option<String>,
    /// The access token and when to renew it.
    access: Option<(String, DateTime<Utc>)>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
    expires_in: Option<i64>,
}

impl StravaSource {
    /// A source that has not loaded its saved token yet (that happens on first fetch).
    pub fn new(
        cache: CacheName,
        settings: Settings,
        state: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        client: HttpClient,
    ) -> Self {
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        let settings = Settings { base_url, per_page: settings.per_page.max(1), ..settings };
        Self {
            cache,
            settings,
            state,
            clock,
            client,
            tokens: tokio::sync::Mutex::new(Tokens::default()),
            budget: Mutex::new(Budget::default()),
        }
    }

    /// The StateStore key of this cache's token state.
    pub fn state_key(cache: &CacheName) -> String {
        format!("strava:{cache}")
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let deadline = Deadline::after(request.timeout);
        let fetched_at = self.clock.now();
        let mut retried = false;

        let mut activities: Vec<Value> = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/api/v3/athlete/activities?page={page}&per_page={}",
                self.settings.base_url, self.settings.per_page
            );
            let response = self.api_get(&url, deadline, &mut retried).await?;
            if !response.is_success() {
                return Err(status_error(&response, "Strava activities", self.clock.now()));
            }
            let items: Vec<Value> = serde_json::from_slice(&response.body).map_err(|e| {
                SourceError::Permanent(format!("Strava activities page {page} is not a JSON array: {e}"))
            })?;
            if items.is_empty() {
                break;
            }
            if page == MAX_PAGES {
                return Err(SourceError::Permanent(format!("Strava returned more than {MAX_PAGES} pages")));
            }
            activities.extend(items);
        }

        keep_previous_detail(&mut activities, request.previous.as_deref().map(|d| &d.body[..]));
        if request.rich {
            // Keep a tenth of the time (at most 2 s) for assembling the document.
            let reserve = (request.timeout / 10).min(Duration::from_secs(2));
            self.add_details(&mut activities, deadline.earlier_by(reserve), &mut retried).await?;
        }

        let doc = serde_json::json!({
            "timestamp": fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "activities": activities,
        });
        let body = serde_json::to_vec(&doc).map_err(|e| SourceError::Permanent(e.to_string()))?;
        Ok(Fetched { body, rate_limits: self.budget().snapshot(self.clock.now()) })
    }

    /// Merges `GET /api/v3/activities/{id}` into the newest activities while the budget
    /// and the time allow; a failure here keeps what was merged so far.
    async fn add_details(
        &self,
        activities: &mut [Value],
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<(), SourceError> {
        let mut order: Vec<usize> = (0..activities.len()).collect();
        // Newest first; the list is already in that order, the sort only makes sure.
        order.sort_by(|&a, &b| start_date(&activities[b]).cmp(start_date(&activities[a])));
        let mut merged = 0;
        for index in order.into_iter().take(MAX_DETAILS) {
            let now = self.clock.now();
            if self.budget().spare(now).is_some_and(|spare| spare == 0) || deadline.remaining().is_none() {
                break;
            }
            let Some(id) = activities[index].get("id").filter(|id| id.is_u64() || id.is_i64()).cloned() else {
                continue;
            };
            let url = format!("{}/api/v3/activities/{id}", self.settings.base_url);
            let response = match self.api_get(&url, deadline, retried).await {
                Ok(response) => response,
                Err(e @ SourceError::Permanent(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(cache = %self.cache, error = %e, merged, "Strava detail refresh stopped early");
                    break;
                }
            };
            match response.status {
                200..=299 => {}
                404 => continue, // deleted since the list was read
                _ => {
                    let e = status_error(&response, "Strava activity detail", self.clock.now());
                    tracing::warn!(cache = %self.cache, error = %e, merged, "Strava detail refresh stopped early");
                    break;
                }
            }
            let Ok(Value::Object(detail)) = serde_json::from_slice::<Value>(&response.body) else {
                return Err(SourceError::Permanent(format!("Strava activity {id} detail is not a JSON object")));
            };
            if let Value::Object(activity) = &mut activities[index] {
                activity.extend(detail);
                merged += 1;
            }
        }
        Ok(())
    }

    /// A GET with the access token: 401 renews the token once per fetch, 429 and a
    /// spent budget become [`SourceError::RateLimited`]; other statuses are returned.
    async fn api_get(&self, url: &str, deadline: Deadline, retried: &mut bool) -> Result<Response, SourceError> {
        loop {
            if let Err(until) = self.budget().check(self.clock.now()) {
                return Err(SourceError::RateLimited { until });
            }
            let token = self.access_token(deadline).await?;
            let request = Request::get(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json");
            let response = self.client.send(request, deadline).await?;
            let readings = ratelimit::parse(&response.headers);
            let now = self.clock.now();
            match response.status {
                429 => return Err(SourceError::RateLimited { until: self.budget().rejected(&readings, now) }),
                401 if !*retried => {
                    self.budget().observe(&readings, now);
                    *retried = true;
                    self.forget_access_token(&token).await;
                }
                401 => {
                    return Err(SourceError::Permanent(
                        "Strava refused a freshly renewed access token (HTTP 401)".into(),
                    ))
                }
                _ => {
                    self.budget().observe(&readings, now);
                    return Ok(response);
                }
            }
        }
    }

    async fn forget_access_token(&self, token: &str) {
        let mut tokens = self.tokens.lock().await;
        if tokens.access.as_ref().is_some_and(|(t, _)| t == token) {
            tokens.access = None;
        }
    }

    /// A valid access token, renewing it (and saving a rotated refresh token) if needed.
    async fn access_token(&self, deadline: Deadline) -> Result<String, SourceError> {
        let mut tokens = self.tokens.lock().await;
        if !tokens.loaded {
            self.load_tokens(&mut tokens).await;
        }
        if let Some((token, renew_after)) = &tokens.access {
            if *renew_after > self.clock.now() {
                return Ok(token.clone());
            }
        }
        tokens.access = None;
        loop {
            match self.renew(&mut tokens, deadline).await {
                Err(SourceError::Permanent(e)) if !tokens.fallbacks.is_empty() => {
                    tracing::warn!(cache = %self.cache, error = %e, "Strava refused the refresh token; trying an older one");
                    tokens.refresh = tokens.fallbacks.remove(0);
                }
                other => return other,
            }
        }
    }

    /// Prefers the saved (rotated) token, then `refresh_token_file`, then the configured one.
    async fn load_tokens(&self, tokens: &mut Tokens) {
        let saved = self
            .state
            .load(&Self::state_key(&self.cache))
            .await
            .and_then(|v| v.get("refresh_token").and_then(Value::as_str).map(str::to_owned));
        let from_file = match &self.settings.refresh_token_file {
            Some(path) => tokio::fs::read_to_string(path).await.ok().map(|s| s.trim().to_owned()),
            None => None,
        };
        let mut candidates: Vec<String> = Vec::new();
        for token in [saved, from_file, Some(self.settings.refresh_token.clone())].into_iter().flatten() {
            if !token.is_empty() && !candidates.contains(&token) {
                candidates.push(token);
            }
        }
        let mut candidates = candidates.into_iter();
        tokens.refresh = candidates.next().unwrap_or_default();
        tokens.durable = Some(tokens.refresh.clone());
        tokens.fallbacks = candidates.collect();
        tokens.loaded = true;
    }

    async fn renew(&self, tokens: &mut Tokens, deadline: Deadline) -> Result<String, SourceError> {
        let form = vec![
            ("client_id".to_owned(), self.settings.client_id.clone()),
            ("client_secret".to_owned(), self.settings.client_secret.clone()),
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), tokens.refresh.clone()),
        ];
        let url = format!("{}/oauth/token", self.settings.base_url);
        let response =
            self.client.send(Request::post_form(url, form).header("Accept", "application/json"), deadline).await?;
        let now = self.clock.now();
        match response.status {
            200..=299 => {}
            400 | 401 | 403 => {
                return Err(SourceError::Permanent(format!(
                    "Strava refused the refresh token (HTTP {}); re-authorise the app",
                    response.status
                )))
            }
            429 => {
                let readings = ratelimit::parse(&response.headers);
                return Err(SourceError::RateLimited { until: self.budget().rejected(&readings, now) });
            }
            _ => return Err(status_error(&response, "Strava's token endpoint", now)),
        }
        // Never echo this body: it holds tokens.
        let answer: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|_| SourceError::Permanent("Strava's token answer is not the expected JSON".into()))?;
        let rotated = answer.refresh_token.filter(|t| !t.is_empty()).unwrap_or_else(|| tokens.refresh.clone());
        // Send the new token from now on even if saving fails: the old one may be dead.
        tokens.refresh = rotated.clone();
        tokens.fallbacks.clear();
        if tokens.durable.as_deref() != Some(rotated.as_str()) {
            let state = serde_json::json!({
                "refresh_token": rotated,
                "rotated_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            self.state
                .save(&Self::state_key(&self.cache), state)
                .await
                .map_err(|e| SourceError::Transient(format!("could not save the rotated Strava refresh token: {e}")))?;
            tokens.durable = Some(rotated.clone());
            if let Some(path) = &self.settings.refresh_token_file {
                if let Err(e) = write_secret_file(path, &rotated).await {
                    // The StateStore copy is the one a restart prefers, so this is not fatal.
                    tracing::warn!(cache = %self.cache, error = %e, path = %path.display(), "could not rewrite refresh_token_file");
                }
            }
            tracing::info!(cache = %self.cache, "Strava rotated the refresh token; saved");
        }
        let expires_at = answer
            .expires_at
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .or_else(|| answer.expires_in.map(|s| now + chrono::Duration::seconds(s)))
            .unwrap_or_else(|| now + chrono::Duration::hours(6));
        // Renew a minute early; but a token handed out with less than that left is still
        // used until it expires rather than renewed on every call.
        let renew_after = if expires_at - EXPIRY_MARGIN > now { expires_at - EXPIRY_MARGIN } else { expires_at };
        tokens.access = Some((answer.access_token.clone(), renew_after));
        Ok(answer.access_token)
    }
}

impl Source for StravaSource {
    fn kind(&self) -> &'static str {
        "strava"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}

fn start_date(activity: &Value) -> &str {
    activity.get("start_date").and_then(Value::as_str).unwrap_or("")
}

/// Activities that are still listed keep the detail fields an earlier rich refresh
/// merged into them; the new summary wins where both have a field.
fn keep_previous_detail(activities: &mut [Value], previous: Option<&[u8]>) {
    let Some(Ok(Value::Object(mut doc))) = previous.map(serde_json::from_slice::<Value>) else { return };
    let Some(Value::Array(old)) = doc.remove("activities") else { return };
    let mut by_id: HashMap<String, Map<String, Value>> = HashMap::new();
    for item in old {
        if let Value::Object(item) = item {
            if let Some(id) = item.get("id").map(Value::to_string) {
                by_id.insert(id, item);
            }
        }
    }
    for activity in activities.iter_mut() {
        let Value::Object(summary) = activity else { continue };
        let Some(mut merged) = summary.get("id").and_then(|id| by_id.remove(&id.to_string())) else { continue };
        merged.extend(std::mem::take(summary));
        *summary = merged;
    }
}

/// Replaces `path` with `contents` so that a crash leaves the old or the new file, never
/// a torn one: temp file (0600) in the same directory, fsync, rename, fsync the directory.
async fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let path = path.to_owned();
    let contents = format!("{contents}\n");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| std::io::Error::other("refresh_token_file has no file name"))?;
        let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let _ = std::fs::remove_file(&tmp); // a leftover would keep its old mode
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::super::clock::TestClock;
    use super::super::test_server::{Canned, MemoryState, Recorded, TestServer};
    use super::*;
    use crate::domain::{Checksum, Document};
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            } else if req.route() == "/api/v3/athlete/activities" {
                let page: usize = req.query("page").unwrap().parse().unwrap();
                Canned::json(200, self.pages.get(page - 1).cloned().unwrap_or(json!([])).to_string())
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
            };
            let cache = CacheName::parse("strava").unwrap();
            StravaSource::new(cache, settings, self.state.clone(), self.clock.clone(), HttpClient::new())
        }

        fn events(&self) -> Vec<String> {
            self.upstream.events.lock().unwrap().clone()
        }
    }

    fn request(rich: bool, previous: Option<&Value>) -> FetchRequest {
        let previous = previous.map(|v| {
            let body = serde_json::to_vec(v).unwrap();
            let name = CacheName::parse("strava").unwrap();
            Arc::new(Document::new(name, 1, Checksum::of(&body), None, None, Utc::now(), body.into()))
        });
        FetchRequest { rich, previous, timeout: Duration::from_secs(10) }
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
            [
                "token configured-refresh",
                "save strava:strava rotated-1",
                "token rotated-1",
                "save strava:strava rotated-2"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_save_means_the_new_access_token_is_not_used() {
        let rig = Rig::new(Upstream {
            tokens: Mutex::new([("access-1", "rotated-1", in_6h())].into()),
            ..Upstream::default()
        });
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
        let spent =
            Canned::json(429, "{}").header("X-RateLimit-Limit", "200,2000").header("X-RateLimit-Usage", "201,2001");
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
        assert!(fetched
            .rate_limits
            .contains(&crate::refresher::sources::RateLimit { window: "read_15m", remaining: 0 }));
        let calls = rig.server.requests().len();
        let err = source.fetch(request(false, None)).await.unwrap_err();
        assert!(matches!(err, SourceError::RateLimited { .. }), "{err:?}");
        assert_eq!(rig.server.requests().len(), calls);
    }

    #[tokio::test]
    async fn rich_refresh_merges_detail_within_the_budget_and_keeps_old_detail() {
        let mut details = HashMap::new();
        details.insert(
            "3".into(),
            json!({"id": 3, "name": "Run 3 (detail)", "description": "fresh", "resource_state": 3}),
        );
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
        let detail_calls: Vec<_> =
            rig.events().into_iter().filter(|e| e.starts_with("GET /api/v3/activities/")).collect();
        assert_eq!(detail_calls, ["GET /api/v3/activities/3 Bearer access-1"]);
    }

    #[tokio::test]
    async fn rich_refresh_without_budget_headers_is_capped() {
        let pages: Vec<Value> = (0..3)
            .map(|p| Value::Array((0..25).map(|i| activity(1000 - (p * 25 + i), "2024-04-01T00:00:00Z")).collect()))
            .collect();
        let rig = Rig::new(Upstream {
            tokens: Mutex::new([("access-1", "r", in_6h())].into()),
            pages,
            ..Upstream::default()
        });
        let mut source = rig.source();
        source.settings.per_page = 25;
        let fetched = source.fetch(request(true, None)).await.unwrap();
        assert_eq!(ids(&fetched.body).len(), 75);
        let detail_calls = rig.events().iter().filter(|e| e.starts_with("GET /api/v3/activities/")).count();
        assert_eq!(detail_calls, MAX_DETAILS);
    }
}
