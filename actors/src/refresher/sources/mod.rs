//! Upstream sources: each kind is a small module behind [`Source`].
//!
//! A source turns one fetch request into a JSON document. It never saves anything
//! itself (the refresher runs the result through the normal save flow), except the
//! state it must not lose, such as Strava's rotated refresh token, which goes through
//! its [`StateStore`] before it is used.

pub mod client;
pub mod clock;
pub mod command;
pub mod conditional;
pub mod config;
pub mod http;
pub mod json_source;
pub mod justgiving;
pub mod pushed;
pub mod ratelimit;
pub mod strava;
#[cfg(test)]
mod test_server;

pub use clock::{Clock, SystemClock, TestClock};
pub use config::{build, build_with_clock, SourceConfig, SourceKind};

use crate::domain::Document;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future (sources run on the refresher's runtime).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the refresher asks for.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The fuller, expensive fetch (`rich_refresh_every`).
    pub rich: bool,
    /// A full re-read was asked for (`POST .../refresh?full=true`): no incremental
    /// shortcut.
    pub full: bool,
    /// Work pushed by upstream since the last fetch (Strava's webhook events): changes
    /// to apply, a deauthorization to confirm, an athlete id to learn.
    pub pushed: pushed::Pushed,
    /// Only `pushed` needs doing (a fetch started by a webhook event): a source that
    /// can apply it to `previous` need not re-read anything else, and answers
    /// [`Fetched::not_modified`] when nothing changed.
    pub push_only: bool,
    /// The document currently held, if any (a rich refresh merges into it; Strava's
    /// incremental refresh builds on it).
    pub previous: Option<Arc<Document>>,
    /// The whole fetch must finish within this (`refresh.fetch_timeout`).
    pub timeout: Duration,
}

impl FetchRequest {
    /// A plain fetch: not rich, not full, nothing pushed, nothing held.
    pub fn plain(timeout: Duration) -> Self {
        Self { rich: false, full: false, pushed: pushed::Pushed::default(), push_only: false, previous: None, timeout }
    }
}

/// One rate-limit reading from upstream headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// `15m`, `daily`, `read_15m`, `read_daily`.
    pub window: &'static str,
    /// Requests left in the window.
    pub remaining: i64,
}

/// A merge applied again on another document: what a fetch that built on the held
/// document learned, put into the document current at save time (a PUT may have landed
/// while the fetch was in flight). `None` when that document cannot take it.
#[derive(Clone)]
pub struct Rebase(Arc<RebaseFn>);

/// The merge itself: the current body in, the merged body out.
type RebaseFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

impl Rebase {
    /// Wraps the merge.
    pub fn new(f: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The fetched changes applied to `current` (a document body).
    pub fn apply(&self, current: &[u8]) -> Option<Vec<u8>> {
        (self.0)(current)
    }
}

impl std::fmt::Debug for Rebase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rebase")
    }
}

/// A successful fetch.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The JSON document as fetched (canonicalised by the save flow).
    pub body: Vec<u8>,
    /// Rate-limit budget seen during the fetch.
    pub rate_limits: Vec<RateLimit>,
    /// Upstream answered 304: the held document is current (`body` is empty).
    pub not_modified: bool,
    /// Set when `body` is a merge into the held document (Strava's incremental,
    /// webhook and detail fetches): how to apply it again on a newer one. `None`: the
    /// body replaces the document as a whole.
    pub rebase: Option<Rebase>,
}

impl Fetched {
    /// A changed document.
    pub fn new(body: Vec<u8>, rate_limits: Vec<RateLimit>) -> Self {
        Self { body, rate_limits, not_modified: false, rebase: None }
    }

    /// Upstream's 304: nothing changed.
    pub fn not_modified() -> Self {
        Self { body: Vec::new(), rate_limits: Vec::new(), not_modified: true, rebase: None }
    }

    /// The same result, a merge that `rebase` applies again on a newer document.
    pub fn merged(mut self, rebase: Rebase) -> Self {
        self.rebase = Some(rebase);
        self
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// Timeouts, connection errors, 5xx: retry with backoff.
    #[error("upstream unavailable: {0}")]
    Transient(String),
    /// 429 or budget exhausted: do not call before `until`.
    #[error("upstream rate limit reached; next call after {until}")]
    RateLimited {
        /// When the window resets.
        until: DateTime<Utc>,
    },
    /// Bad credentials, 4xx, invalid JSON: retry with backoff, and alert.
    #[error("upstream refused: {0}")]
    Permanent(String),
    /// The account behind the source withdrew its authorization, as upstream itself
    /// confirmed (Strava refused the refresh token) or another instance recorded:
    /// never fetch again until the credentials change.
    #[error("the upstream account deauthorized this application")]
    Revoked,
}

/// A kind of upstream.
pub trait Source: Send + Sync {
    /// `strava`, `justgiving`, `http`, `command`.
    fn kind(&self) -> &'static str;

    /// Whether a fetch needs the held document even when not rich (Strava's
    /// incremental refresh merges into it).
    fn builds_on_previous(&self) -> bool {
        false
    }

    /// Upstream requests sent so far (the refresher counts the difference a fetch made:
    /// it runs one fetch per cache at a time, and nothing else calls upstream).
    fn upstream_calls(&self) -> u64 {
        0
    }

    /// The upstream's rate-limit budget as last seen (Strava's), whatever the last
    /// fetch's outcome (a 429 included).
    fn rate_limits(&self) -> Vec<RateLimit> {
        Vec::new()
    }

    /// The Strava source, for routing pushed events by athlete.
    fn as_strava(&self) -> Option<&strava::StravaSource> {
        None
    }

    /// Fetches the document.
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>>;
}

/// Where a source keeps state it must never lose (e.g. a rotated OAuth refresh token).
pub trait StateStore: Send + Sync {
    /// The saved state of source `key`, if any.
    fn load(&self, key: &str) -> BoxFuture<'_, Option<serde_json::Value>>;

    /// Saves `state` durably; only once this returns `Ok` may the state be relied on.
    fn save(&self, key: &str, state: serde_json::Value) -> BoxFuture<'_, Result<(), String>>;

    /// The state of `key` as every instance sees it (Postgres), without the local copy;
    /// `None` without a shared store.
    fn load_shared(&self, _key: &str) -> BoxFuture<'_, Option<serde_json::Value>> {
        Box::pin(async { None })
    }

    /// Deletes the state of `key` everywhere it is kept (a deauthorized athlete's
    /// tokens must not survive).
    fn remove(&self, key: &str) -> BoxFuture<'_, Result<(), String>>;
}
