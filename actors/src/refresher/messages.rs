//! Messages the refresher accepts.

use super::{RefreshCache, RefreshError};
use crate::domain::{CacheName, Document};
use actix::Message;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Startup is done: load what exists and start the schedules.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Begin;

/// Refresh `name` now (joining a fetch in flight). With `wait`, answers with the
/// resulting document (the emergency refresh); without, answers at once.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Arc<Document>>, RefreshError>")]
pub struct RefreshNow {
    /// The cache.
    pub name: CacheName,
    /// Wait for the result.
    pub wait: bool,
    /// A full re-read (Strava: no incremental shortcut).
    pub full: bool,
}

/// Graceful shutdown: start no new fetch of any kind (fetches in flight finish or are
/// abandoned with the process).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Quiesce;

/// SIGUSR1: refresh every cache with a source now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct RefreshAll;

/// SIGHUP: new schedules, sources and `[refresh]` settings (fetch timeout, jitter).
#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// The caches with sources.
    pub caches: Vec<RefreshCache>,
    /// `[refresh]`: applies to fetches started from now on.
    pub policy: super::RefreshPolicy,
}

/// A document of `name` was saved (a PUT): its `last_fetch` moves the schedule.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Observed {
    /// The cache.
    pub name: CacheName,
    /// Its last fetch.
    pub last_fetch: Option<DateTime<Utc>>,
    /// Its last rich fetch.
    pub last_rich_fetch: Option<DateTime<Utc>>,
}

/// Why a fetch runs (the `reason` label of `tiercache_upstream_calls_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Due on the schedule.
    Schedule,
    /// `POST .../refresh?full=true`.
    Full,
    /// Changes pushed by a webhook.
    Webhook,
    /// A read found nothing anywhere.
    Emergency,
    /// `POST .../refresh` or SIGUSR1.
    Manual,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Full => "full",
            Self::Webhook => "webhook",
            Self::Emergency => "emergency",
            Self::Manual => "manual",
        }
    }
}

/// A Strava webhook event, acknowledged already: route it to the athlete's caches.
/// Made by [`super::RefresherHandle::strava_push`], which bounds how many wait.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StravaPush {
    /// The event.
    pub event: super::push::PushEvent,
    /// Its place in the intake, freed once the refresher has taken the event in.
    pub(super) _ticket: super::push::IntakeTicket,
}

/// How a fetch that succeeded changed the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refreshed {
    /// A new version was saved.
    Saved,
    /// Upstream answered 304: `last_fetch` moved, no new version.
    NotModified,
    /// Another instance fetched and saved it.
    ByPeer,
    /// A webhook's fetch found nothing to change (nothing saved, nothing moved).
    Unchanged,
    /// Another save landed while the fetch was in flight and its result was a whole
    /// document built before it: the result was dropped, that save stands.
    Superseded,
}

impl Refreshed {
    /// As meta shows it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Saved => "saved",
            Self::NotModified => "not_modified",
            Self::ByPeer => "by_peer",
            Self::Unchanged => "unchanged",
            Self::Superseded => "superseded",
        }
    }
}

/// How a fetch failed, as the schedule needs to know it.
#[derive(Debug, Clone)]
pub(super) enum FetchFailure {
    Failed(String),
    RateLimited(DateTime<Utc>),
    /// Another instance holds this cache's refresh leadership.
    NotLeader,
    /// The upstream account deauthorized the app (Strava refused the refresh token,
    /// or another instance recorded it).
    Revoked,
}

impl From<FetchFailure> for RefreshError {
    fn from(f: FetchFailure) -> Self {
        match f {
            FetchFailure::Failed(m) => RefreshError::Failed(m),
            FetchFailure::RateLimited(t) => RefreshError::RateLimited(t),
            FetchFailure::NotLeader => RefreshError::Failed("another instance refreshes this cache".into()),
            FetchFailure::Revoked => {
                RefreshError::Deauthorized("the upstream account withdrew this app's authorization".into())
            }
        }
    }
}
