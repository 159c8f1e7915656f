//! One fetch of one cache, outside the actor: leadership, the upstream call, then the
//! result admitted by the cache's rules and saved through the save flow.

use super::messages::{FetchFailure, Refreshed};
use super::sources::{pushed::Pushed, FetchRequest, Fetched, Source, SourceError};
use crate::cache_rules::{Refusal, Refused};
use crate::domain::{CacheName, Document, Precondition};
use crate::metrics::{CacheWindow, Metrics};
use crate::save_flow::{SaveError, SaveFlow};
use crate::store::{StoreError, StoreHandle};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How long an on-demand refresh that another instance leads waits for that
/// instance's result before fetching itself.
const PEER_GRACE: Duration = Duration::from_secs(5);

/// Periods without a fresh result after which an instance that does not lead a
/// cache refreshes it anyway.
pub(super) const LEADER_SILENCE_PERIODS: i32 = 3;

/// How long an on-demand refresh waits to learn whether this instance leads.
const LEAD_QUESTION_ON_DEMAND: Duration = Duration::from_secs(1);

/// How many times a merge is done again on a document saved during its fetch before
/// the next fetch is left to do it.
const MERGE_RETRIES: u32 = 3;

/// What a fetch ends with.
pub(super) type FetchResult = Result<(Arc<Document>, Refreshed), FetchFailure>;

/// Whether the leader of a cache has been silent for [`LEADER_SILENCE_PERIODS`]: no
/// fresh result since `since` (the later of the last fetch and the first time this
/// instance found itself not leading). An advisory lock has no permission check, so a
/// session of any role (another project's, by mistake or on purpose) could hold it and
/// stop every refresh; this bounds the damage to a few periods.
pub(super) fn leader_silent(since: Option<DateTime<Utc>>, every: Option<Duration>) -> bool {
    let (Some(since), Some(every)) = (since, every) else { return false };
    let Ok(every) = chrono::Duration::from_std(every) else { return false };
    Utc::now() - since > every * LEADER_SILENCE_PERIODS
}

/// Waits up to `grace` for the file tier to hold a document of `cache` fetched after
/// `known` (the listener writes another instance's newer row there).
async fn peer_result(
    saver: &SaveFlow,
    cache: &CacheName,
    known: Option<DateTime<Utc>>,
    grace: Duration,
) -> Option<Arc<Document>> {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        if let Ok(Some(doc)) = saver.files().read(cache.clone()).await.map(|l| l.doc) {
            if doc.last_fetch.is_some() && doc.last_fetch > known {
                return Some(doc);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The refresh's words for a refused document (meta's `last_refresh_error`).
fn refused(refusal: Refusal) -> FetchFailure {
    FetchFailure::Failed(refusal.worded(Refused::Fetched))
}

/// Who waits for a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// The schedule: nobody waits, and another instance's lock means not ours to make.
    Scheduled,
    /// Someone waits (POST, SIGUSR1, an emergency read): the leader's result may arrive
    /// instead, and Postgres is asked only briefly.
    OnDemand,
}

/// What a fetch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// A whole fetch of the source (pushed changes ride along).
    Everything,
    /// A webhook's own fetch: only the pushed work is done.
    PushedOnly,
}

/// Whether this instance refreshes although another one holds the cache's refresh lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Takeover {
    /// No: the lock is respected.
    No,
    /// The leader has been silent: refresh whatever the lock says.
    Continues,
    /// ... and this fetch is the first to find that out (it logs it).
    Starts,
}

/// What a fetch builds on, and so reads before it calls the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    /// The held document (a rich fetch, or a source that merges into it).
    HeldDocument,
    /// Only the held version, for the save's precondition.
    HeldVersion,
}

/// Everything one fetch needs, taken from the cache's state when it starts.
pub(super) struct FetchJob {
    pub cache: CacheName,
    pub source: Arc<dyn Source>,
    pub saver: SaveFlow,
    pub metrics: Arc<Metrics>,
    /// Set when refreshes are coordinated through Postgres.
    pub leader: Option<StoreHandle>,
    pub timeout: Duration,
    pub rich: bool,
    pub full: bool,
    pub asked: Asked,
    pub scope: Scope,
    pub pushed: Pushed,
    pub takeover: Takeover,
    /// `last_fetch` when the fetch started (a peer's result must be newer).
    pub known_fetch: Option<DateTime<Utc>>,
    pub previous_rich: Option<DateTime<Utc>>,
    pub base: Base,
}

impl FetchJob {
    /// Runs the fetch to its end.
    pub(super) async fn run(self) -> FetchResult {
        if let Some(by_peer) = self.lead().await? {
            return Ok((by_peer, Refreshed::ByPeer));
        }
        // The base: the version this fetch builds on. Its result is saved only while that
        // version is still current (see `save`).
        let (held, base) = if self.base == Base::HeldDocument {
            let held = self.saver.files().read(self.cache.clone()).await.ok().and_then(|l| l.doc);
            let base = Precondition::based_on(held.as_deref());
            (held, base)
        } else {
            (None, self.base().await)
        };
        // The content's time: when the upstream was asked (see `Document::content_time`).
        let started = Utc::now();
        let fetched = self.call_upstream(held.clone()).await?;
        // A webhook's fetch that changed nothing: the held document stays as it is, its
        // last_fetch included (pushed work never moves the schedule).
        if let (true, true, Some(held)) = (fetched.not_modified, self.scope == Scope::PushedOnly, held.clone()) {
            return Ok((held, Refreshed::Unchanged));
        }
        if fetched.not_modified {
            let doc = super::not_modified(&self.saver, held.as_deref()).await?;
            self.record_check(&doc).await;
            return Ok((doc, Refreshed::NotModified));
        }
        self.save(&fetched, held, base, started).await
    }

    /// The precondition of a save built from what disk holds now, without reading the
    /// document (a source that does not build on it needs only its version).
    async fn base(&self) -> Precondition {
        match self.saver.files().list().await {
            Ok(index) => match index.get(&self.cache).and_then(|d| d.etag.clone()) {
                Some(etag) => Precondition::OneOf(vec![etag]),
                None => Precondition::Absent,
            },
            // Unknown: the save checks nothing rather than never saving.
            Err(_) => Precondition::None,
        }
    }

    /// Whether this instance may fetch: `Ok(Some)` when the leading instance's result
    /// arrived instead, `Err(NotLeader)` when a scheduled fetch is another's to make.
    async fn lead(&self) -> Result<Option<Arc<Document>>, FetchFailure> {
        // The event arrived here: no other instance is going to apply it.
        let Some(store) = self.leader.as_ref().filter(|_| self.scope == Scope::Everything) else { return Ok(None) };
        // Someone waits for an on-demand refresh: an unreachable Postgres must not hold
        // it up for a whole connect timeout.
        let ask = if self.asked == Asked::OnDemand { LEAD_QUESTION_ON_DEMAND } else { self.timeout };
        let lead = tokio::time::timeout(ask, store.try_lead(self.cache.clone()))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer in time".into())));
        match lead {
            Ok(true) => Ok(None),
            Ok(false) if self.takeover != Takeover::No => {
                if self.takeover == Takeover::Starts {
                    tracing::warn!(
                        cache = %self.cache, alert = true, periods = LEADER_SILENCE_PERIODS,
                        "another session holds this cache's refresh lock but no fresh result has \
                         arrived for several periods; refreshing here anyway"
                    );
                }
                Ok(None)
            }
            // On demand (POST, SIGUSR1, an emergency read), several instances are often
            // asked at once: the leader's result arrives through LISTEN/NOTIFY; fetch
            // here only if it does not come.
            Ok(false) if self.asked == Asked::OnDemand => {
                let grace = PEER_GRACE.min(self.timeout);
                let found = peer_result(&self.saver, &self.cache, self.known_fetch, grace).await;
                if let Some(doc) = &found {
                    tracing::info!(cache = %self.cache, version = doc.version, "refreshed by the leading instance");
                }
                Ok(found)
            }
            Ok(false) => Err(FetchFailure::NotLeader),
            // Postgres is away: nobody can coordinate; freshness wins over the (rare)
            // duplicate upstream call.
            Err(e) => {
                tracing::debug!(cache = %self.cache, error = %e, "leadership unknown; refreshing anyway");
                Ok(None)
            }
        }
    }

    /// A 304 saves no new version, so nothing would tell the other instances that this
    /// one checked: it records the check in the row (its `last_fetch` moves), where they
    /// look (the row heads), so they neither poll the upstream nor take over. Best
    /// effort: a failure costs at most a take-over a few periods later.
    async fn record_check(&self, doc: &Arc<Document>) {
        let Some(store) = &self.leader else { return };
        match tokio::time::timeout(self.timeout, store.record_check(doc.clone())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(cache = %self.cache, error = %e, "could not record the check in Postgres"),
            Err(_) => tracing::debug!(cache = %self.cache, "recording the check in Postgres timed out"),
        }
    }

    /// The source's call, within the fetch timeout; the rate budget it saw is published.
    async fn call_upstream(&self, previous: Option<Arc<Document>>) -> Result<Fetched, FetchFailure> {
        let (rich, full, timeout) = (self.rich, self.full, self.timeout);
        let push_only = self.scope == Scope::PushedOnly;
        let request = FetchRequest { rich, full, pushed: self.pushed.clone(), push_only, previous, timeout };
        fail::fail_point!("refresher::fetch_async");
        let fetched = match tokio::time::timeout(timeout, self.source.fetch(request)).await {
            Err(_) => return Err(FetchFailure::Failed(format!("timed out after {timeout:?}"))),
            Ok(Err(SourceError::RateLimited { until })) => return Err(FetchFailure::RateLimited(until)),
            Ok(Err(SourceError::Revoked)) => return Err(FetchFailure::Revoked),
            Ok(Err(e)) => return Err(FetchFailure::Failed(e.to_string())),
            Ok(Ok(f)) => f,
        };
        for limit in &fetched.rate_limits {
            self.metrics
                .rate_limit_remaining
                .get_or_create(&CacheWindow { cache: self.cache.to_string(), window: limit.window })
                .set(limit.remaining);
        }
        Ok(fetched)
    }

    /// Admits the fetched body by the cache's rules and saves it like a PUT, on
    /// condition that `base` is still current. When another save landed meanwhile, a
    /// merge is done again on the new document (at most [`MERGE_RETRIES`] times, then
    /// the next fetch does it); a whole-document result is dropped and the newer save
    /// stands ([`Refreshed::Superseded`]).
    async fn save(
        &self,
        fetched: &Fetched,
        mut held: Option<Arc<Document>>,
        mut base: Precondition,
        started: DateTime<Utc>,
    ) -> FetchResult {
        let mut body = fetched.body.clone();
        let mut tries = 0;
        loop {
            let admitted = self.saver.admit(&self.cache, &body).map_err(refused)?;
            let now = Utc::now();
            // Applying pushed changes is not a fetch of the whole source: the schedule (and
            // with it the daily full read) keeps counting from the last one.
            // Otherwise the upstream's answer as of the fetch's start, or, for a merge, as of
            // the newer of that and the document it merges into (which it contains).
            let last_fetch = match held.as_ref().and_then(|h| h.last_fetch) {
                Some(last) if self.scope == Scope::PushedOnly => Some(last),
                Some(last) if fetched.rebase.is_some() => Some(last.max(started)),
                _ => Some(started),
            };
            let last_rich = if self.rich { Some(now) } else { self.previous_rich };
            match self.saver.save_fetched(&self.cache, admitted.with_fetch_times(last_fetch, last_rich), base, 0).await
            {
                Ok(doc) => return Ok((doc, Refreshed::Saved)),
                Err(SaveError::PreconditionFailed { .. }) => {}
                Err(e) => return Err(FetchFailure::Failed(format!("could not save: {e}"))),
            }
            let current = self.saver.files().read(self.cache.clone()).await.ok().and_then(|l| l.doc);
            let Some(current) = current else {
                return Err(FetchFailure::Failed("the cache was deleted during the fetch".into()));
            };
            let Some(rebase) = fetched.rebase.as_ref().filter(|_| tries < MERGE_RETRIES) else {
                if fetched.rebase.is_some() {
                    return Err(FetchFailure::Failed(format!(
                        "the cache changed {MERGE_RETRIES} times while its fetch was applied; the next fetch applies it again"
                    )));
                }
                tracing::info!(
                    cache = %self.cache, version = current.version,
                    "a save landed while the fetch was in flight; the fetched document is dropped and that save stands"
                );
                return Ok((current, Refreshed::Superseded));
            };
            let Some(rebased) = rebase.apply(&current.body) else {
                tracing::info!(cache = %self.cache, version = current.version,
                    "a save landed while the fetch was in flight and cannot take its changes; that save stands");
                return Ok((current, Refreshed::Superseded));
            };
            tracing::debug!(cache = %self.cache, version = current.version, "a save landed during the fetch; its changes are applied again on it");
            body = rebased;
            base = Precondition::based_on(Some(&current));
            held = Some(current);
            tries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(refusal: Refusal) -> String {
        match refused(refusal) {
            FetchFailure::Failed(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_document_is_worded_as_before() {
        assert_eq!(
            words(Refusal::TooLarge { size: 120, limit: 100 }),
            "fetched document is 120 bytes, above max_size 100"
        );
        assert_eq!(words(Refusal::InvalidJson("EOF".into())), "upstream sent invalid JSON: EOF");
        assert_eq!(
            words(Refusal::Schema(vec!["/a: x".into(), "/b: y".into()])),
            "fetched document fails the cache's schema: /a: x; /b: y"
        );
        assert_eq!(words(Refusal::NotConfigured), "fetched document refused: the cache is not configured");
    }

    #[test]
    fn a_silent_leader_is_overtaken_after_a_few_periods() {
        let every = Some(Duration::from_secs(60));
        assert!(!leader_silent(None, every));
        assert!(!leader_silent(Some(Utc::now()), None));
        assert!(!leader_silent(Some(Utc::now() - chrono::Duration::seconds(150)), every));
        assert!(leader_silent(Some(Utc::now() - chrono::Duration::seconds(200)), every));
    }
}
