//! `kind = "strava"`: the athlete's activities, with per-activity detail on rich refreshes.
//!
//! One file per concern: `tokens` (the OAuth refresh-token flow), `budget` (GETs that
//! respect Strava's rate limits), `list` (the paginated activity list), `detail`
//! (per-activity detail on rich refreshes), `merge` (activities into the held
//! document), `sync` (what is remembered between fetches), `push` (webhook events,
//! the athlete id, deauthorization).
//!
//! Strava may rotate the refresh token on every token refresh and the old one may stop
//! working, so a rotated token is saved (StateStore, then `refresh_token_file`) before
//! the access token that came with it is used: a crash at any point leaves a usable
//! token on disk.

mod budget;
mod detail;
mod list;
mod merge;
mod push;
mod sync;
#[cfg(test)]
mod tests;
mod tokens;

use super::client::HttpClient;
use super::clock::Clock;
use super::config::STRAVA_MAX_PER_PAGE;
use super::ratelimit::Budget;
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError, StateStore};
use crate::domain::CacheName;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use sync::SyncState;
use tokens::Tokens;

pub use detail::MAX_DETAILS;

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
    budget: Mutex<Budget>,
    /// Loaded from the state store on first use.
    sync: tokio::sync::Mutex<Option<SyncState>>,
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
            budget: Mutex::new(Budget::default()),
            sync: tokio::sync::Mutex::new(None),
        }
    }

    /// The StateStore key of this cache's token state.
    pub fn state_key(cache: &CacheName) -> String {
        format!("strava:{cache}")
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

    fn as_strava(&self) -> Option<&StravaSource> {
        Some(self)
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}
