//! `kind = "strava"`: the athlete's activities, with per-activity detail on rich refreshes.
//!
//! One file per concern: `tokens` (the OAuth refresh-token flow), `budget` (GETs that
//! respect Strava's rate limits, shared by the application's sources), `list` (the
//! paginated activity list), `detail` (per-activity detail on rich refreshes), `merge`
//! (activities into the held document), `sync` (what is remembered between fetches),
//! `push` (webhook events applied), `athlete` (whose activities these are), `deauth`
//! (a deauthorization confirmed with Strava, and what it makes the source forget),
//! `words` (Strava's own words in an error).
//!
//! Strava may rotate the refresh token on every token refresh and the old one may stop
//! working, so a rotated token is saved (StateStore, then `refresh_token_file`) before
//! the access token that came with it is used: a crash at any point leaves a usable
//! token on disk.

mod athlete;
mod budget;
mod deauth;
mod detail;
mod list;
mod merge;
mod push;
mod sync;
#[cfg(test)]
mod tests;
mod tokens;
pub mod words;

use super::client::HttpClient;
use super::clock::Clock;
use super::config::STRAVA_MAX_PER_PAGE;
use super::pushed::PushReport;
use super::ratelimit::Budget;
use super::{BoxFuture, FetchRequest, Fetched, RateLimit, Source, SourceError, StateStore};
use crate::domain::CacheName;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
pub use sync::{Deauthorization, SyncState};
use tokens::Tokens;

pub use detail::MAX_DETAILS;
pub use list::INCREMENTAL_OVERLAP;

/// What the source needs from its configuration: `kind = "strava"`'s keys, secrets
/// already read, as the config layer validated them. `Debug` redacts the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The configured refresh token (used only until a rotated one has been saved).
    pub refresh_token: String,
    /// Also kept up to date with the rotated token, if set.
    pub refresh_token_file: Option<PathBuf>,
    /// Scheme, host and port: [`super::config::STRAVA_BASE_URL`] in production.
    pub base_url: String,
    /// Activities per page, clamped to 1..=[`STRAVA_MAX_PER_PAGE`].
    pub per_page: u32,
    /// A full re-read this often; incremental (`after=`) refreshes in between.
    pub full_refresh_every: Duration,
    /// Learn the athlete id on the first fetch (webhooks are on: a deauthorization
    /// must be routable after the tokens stop working).
    pub learn_athlete: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::config::Redacted;
        let Self {
            client_id,
            client_secret: _,
            refresh_token: _,
            refresh_token_file,
            base_url,
            per_page,
            full_refresh_every,
            learn_athlete,
        } = self;
        f.debug_struct("Strava")
            .field("client_id", client_id)
            .field("client_secret", &Redacted)
            .field("refresh_token", &Redacted)
            .field("refresh_token_file", refresh_token_file)
            .field("base_url", base_url)
            .field("per_page", per_page)
            .field("full_refresh_every", full_refresh_every)
            .field("learn_athlete", learn_athlete)
            .finish()
    }
}

/// The Strava source of one cache.
pub struct StravaSource {
    cache: CacheName,
    settings: Settings,
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    tokens: tokio::sync::Mutex<Tokens>,
    /// The application's budget: shared with every strava source of the same
    /// application (Strava's limits are per application), and kept across reloads.
    budget: ArcSwap<Mutex<Budget>>,
    /// Loaded from the state store on first use.
    sync: tokio::sync::Mutex<Option<SyncState>>,
    /// What the last fetch did with its pushed work (one fetch at a time per cache).
    report: Mutex<PushReport>,
    /// Why Strava's answer meant a deauthorization, once it did.
    deauthorized_why: Mutex<Option<String>>,
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
        let settings = Settings { base_url, per_page: settings.per_page.clamp(1, STRAVA_MAX_PER_PAGE), ..settings };
        Self {
            cache,
            settings,
            state,
            clock,
            client,
            tokens: tokio::sync::Mutex::new(Tokens::default()),
            budget: ArcSwap::from_pointee(Mutex::new(Budget::default())),
            sync: tokio::sync::Mutex::new(None),
            report: Mutex::new(PushReport::default()),
            deauthorized_why: Mutex::new(None),
        }
    }

    /// The StateStore key of this cache's token state.
    pub fn state_key(cache: &CacheName) -> String {
        format!("strava:{cache}")
    }

    /// Which application's budget this source spends: Strava counts requests per
    /// application (client id), at one origin.
    pub fn application(&self) -> String {
        format!("{}\0{}", self.settings.base_url, self.settings.client_id)
    }

    /// Spends `budget` from now on: the one of every source of this application.
    pub fn share_budget(&self, budget: Arc<Mutex<Budget>>) {
        if !Arc::ptr_eq(&self.budget.load(), &budget) {
            self.budget.store(budget);
        }
    }

    /// Runs `f` on the application's budget.
    pub(super) fn with_budget<R>(&self, f: impl FnOnce(&mut Budget) -> R) -> R {
        let budget = self.budget.load_full();
        let mut guard = budget.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Whether pushed work may call Strava now; `Err(until)` while its share is spent.
    pub fn pushed_share_left(&self) -> Result<(), chrono::DateTime<chrono::Utc>> {
        let now = self.clock.now();
        self.with_budget(|b| b.check_pushed(now))
    }

    /// What the last fetch did with the pushed work it carried (taken once).
    pub fn take_push_report(&self) -> PushReport {
        std::mem::take(&mut *self.report.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn report(&self, f: impl FnOnce(&mut PushReport)) {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Every secret this source holds, to keep out of the errors it words.
    pub(super) fn secrets(&self) -> Vec<&str> {
        vec![self.settings.client_secret.as_str(), self.settings.refresh_token.as_str()]
    }
}

impl Source for StravaSource {
    fn kind(&self) -> &'static str {
        "strava"
    }

    fn builds_on_previous(&self) -> bool {
        true
    }

    fn upstream_calls(&self) -> u64 {
        self.client.calls()
    }

    fn rate_limits(&self) -> Vec<RateLimit> {
        let now = self.clock.now();
        self.with_budget(|b| b.snapshot(now))
    }

    fn as_strava(&self) -> Option<&StravaSource> {
        Some(self)
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}
