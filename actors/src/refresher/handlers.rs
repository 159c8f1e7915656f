//! Handlers, the tick that starts due fetches, and what a fetch's end does.

use super::messages::{Begin, FetchFailure, Observed, Quiesce, Reason, Reconfigure, RefreshAll, RefreshNow, Refreshed};
use super::schedule::{due_at, Due};
use super::sources::{FetchRequest, SourceError};
use super::{RefreshError, Refresher, ACTOR};
use crate::domain::{CacheName, Document, NewDocument, Precondition};
use crate::files::FileHandle;
use crate::metrics::{CacheLabel, CacheResult, CacheWindow};
use crate::retry_queue::backoff::Backoff;
use crate::supervisor::guard;
use actix::{ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::oneshot;

/// How long an on-demand refresh that another instance leads waits for that
/// instance's result before fetching itself.
const PEER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Periods without a fresh result after which an instance that does not lead a
/// cache refreshes it anyway.
const LEADER_SILENCE_PERIODS: i32 = 3;

/// Whether the leader of a cache has been silent for [`LEADER_SILENCE_PERIODS`]: no
/// fresh result since `since` (the later of the last fetch and the first time this
/// instance found itself not leading). An advisory lock has no permission check, so a
/// session of any role (another project's, by mistake or on purpose) could hold it and
/// stop every refresh; this bounds the damage to a few periods.
fn leader_silent(since: Option<DateTime<Utc>>, every: Option<std::time::Duration>) -> bool {
    let (Some(since), Some(every)) = (since, every) else { return false };
    let Ok(every) = chrono::Duration::from_std(every) else { return false };
    Utc::now() - since > every * LEADER_SILENCE_PERIODS
}

/// How long an on-demand refresh waits to learn whether this instance leads.
const LEAD_QUESTION_ON_DEMAND: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits up to `grace` for the file tier to hold a document of `cache` fetched after
/// `known` (the listener writes another instance's newer row there).
async fn peer_result(
    saver: &crate::save_flow::SaveFlow,
    cache: &CacheName,
    known: Option<DateTime<Utc>>,
    grace: std::time::Duration,
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
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

impl Refresher {
    /// Reads each cache's fetch times from the file tier's index.
    pub(super) fn load_times(&mut self, ctx: &mut Context<Self>) {
        let files = self.saver_files();
        ctx.wait(async move { files.list().await }.into_actor(self).map(|index, refresher, _| match index {
            Ok(index) => {
                for (name, state) in &mut refresher.caches {
                    if let Some(d) = index.get(name).filter(|d| d.etag.is_some()) {
                        state.last_fetch = d.last_fetch;
                        state.last_rich_fetch = d.last_rich_fetch;
                    }
                }
            }
            Err(e) => {
                tracing::error!(actor = ACTOR, error = %e, "cannot read fetch times; every cache counts as overdue")
            }
        }));
    }

    fn saver_files(&self) -> crate::files::FileHandle {
        self.saver.files().clone()
    }

    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.begun || self.quiesced {
            return;
        }
        let now = Utc::now();
        let due: Vec<(CacheName, Due, DateTime<Utc>)> = self
            .caches
            .iter()
            .filter(|(name, s)| !s.in_flight && !self.push.is_revoked(name))
            .filter_map(|(name, s)| {
                let (at, kind) =
                    due_at(s.last_fetch, s.last_rich_fetch, s.config.every, s.config.rich_every, s.jitter, s.retry_at)?;
                (at <= now).then(|| (name.clone(), kind, at))
            })
            .collect();
        for (name, kind, at) in due {
            // Never fetched: due now (and still a scheduled refresh, under leadership).
            let due = Some(if at > DateTime::<Utc>::MIN_UTC { at } else { now });
            self.start_fetch(ctx, name, kind == Due::Rich, due, Reason::Schedule);
        }
        self.start_pushed(ctx);
    }

    /// Starts one fetch of `name` unless one is in flight. `due`: when it was due (for
    /// the lag metric), `None` for on-demand fetches.
    pub(super) fn start_fetch(
        &mut self,
        ctx: &mut Context<Self>,
        name: CacheName,
        rich: bool,
        due: Option<DateTime<Utc>>,
        reason: Reason,
    ) {
        let reporter = self.reporter.clone();
        if guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("refresher::fetch");
        })
        .is_err()
        {
            return;
        }
        let Some(state) = self.caches.get_mut(&name) else { return };
        if state.in_flight {
            return;
        }
        state.in_flight = true;
        let source = state.config.source.clone();
        let max_size = state.config.max_size;
        let schema = state.config.schema.clone();
        let previous_rich = state.last_rich_fetch;
        let timeout = self.policy.fetch_timeout;
        let saver = self.saver.clone();
        let metrics = self.metrics.clone();
        let cache = name.clone();
        let leader = self.leader.clone();
        let on_demand = due.is_none();
        let known_fetch = state.last_fetch;
        // No fresh result since then, while another instance leads: past a few periods
        // of that, this instance refreshes anyway (the lock is only advisory: any role
        // can hold it, see `leader_silent`).
        let silent_since = state.not_leader_since.max(state.last_fetch);
        let newly_taking_over = !state.taking_over && leader_silent(silent_since, state.config.every);
        state.taking_over |= newly_taking_over;
        let take_over = state.taking_over;
        let full = std::mem::take(&mut state.want_full);
        let reason = if full { Reason::Full } else { reason };
        // Pushed changes ride on any fetch; a webhook's own fetch applies only them.
        let pushed = self.push.take(&name);
        let push_only = reason == Reason::Webhook;
        let (pushed_copy, calls_before, kind) = (pushed.clone(), source.upstream_calls(), source.kind());
        let builds_on_previous = rich || source.builds_on_previous();
        let fut = async move {
            // The event arrived here: no other instance is going to apply it.
            if let Some(store) = leader.filter(|_| !push_only) {
                // Someone waits for an on-demand refresh: an unreachable Postgres must
                // not hold it up for a whole connect timeout.
                let ask = if on_demand { LEAD_QUESTION_ON_DEMAND } else { timeout };
                let lead = tokio::time::timeout(ask, store.try_lead(cache.clone()))
                    .await
                    .unwrap_or_else(|_| Err(crate::store::StoreError::Unavailable("no answer in time".into())));
                match lead {
                    Ok(true) => {}
                    Ok(false) if take_over => {
                        if newly_taking_over {
                            tracing::warn!(
                                cache = %cache, alert = true, periods = LEADER_SILENCE_PERIODS,
                                "another session holds this cache's refresh lock but no fresh result has \
                                 arrived for several periods; refreshing here anyway"
                            );
                        }
                    }
                    // On demand (POST, SIGUSR1, an emergency read), several instances
                    // are often asked at once: the leader's result arrives through
                    // LISTEN/NOTIFY; fetch here only if it does not come.
                    Ok(false) if on_demand => {
                        let grace = PEER_GRACE.min(timeout);
                        if let Some(doc) = peer_result(&saver, &cache, known_fetch, grace).await {
                            tracing::info!(cache = %cache, version = doc.version, "refreshed by the leading instance");
                            return Ok((doc, Refreshed::ByPeer));
                        }
                    }
                    Ok(false) => return Err(FetchFailure::NotLeader),
                    // Postgres is away: nobody can coordinate; freshness wins over the
                    // (rare) duplicate upstream call.
                    Err(e) => tracing::debug!(cache = %cache, error = %e, "leadership unknown; refreshing anyway"),
                }
            }
            let previous = if builds_on_previous {
                saver.files().read(cache.clone()).await.ok().and_then(|l| l.doc)
            } else {
                None
            };
            let held = previous.clone();
            let request = FetchRequest { rich, full, pushed, push_only, previous, timeout };
            fail::fail_point!("refresher::fetch_async");
            let fetched = match tokio::time::timeout(timeout, source.fetch(request)).await {
                Err(_) => return Err(FetchFailure::Failed(format!("timed out after {timeout:?}"))),
                Ok(Err(SourceError::RateLimited { until })) => return Err(FetchFailure::RateLimited(until)),
                Ok(Err(SourceError::Revoked)) => return Err(FetchFailure::Revoked),
                Ok(Err(e)) => return Err(FetchFailure::Failed(e.to_string())),
                Ok(Ok(f)) => f,
            };
            for limit in &fetched.rate_limits {
                metrics
                    .rate_limit_remaining
                    .get_or_create(&CacheWindow { cache: cache.to_string(), window: limit.window })
                    .set(limit.remaining);
            }
            if fetched.not_modified {
                return super::not_modified(&saver, held.as_deref()).await.map(|doc| (doc, Refreshed::NotModified));
            }
            if fetched.body.len() as u64 > max_size {
                return Err(FetchFailure::Failed(format!(
                    "fetched document is {} bytes, above max_size {max_size}",
                    fetched.body.len()
                )));
            }
            if let Some(schema) = &schema {
                let value: serde_json::Value = serde_json::from_slice(&fetched.body)
                    .map_err(|e| FetchFailure::Failed(format!("upstream sent invalid JSON: {e}")))?;
                schema.validate(&value).map_err(|errors| {
                    FetchFailure::Failed(format!("fetched document fails the cache's schema: {}", errors.join("; ")))
                })?;
            }
            let mut doc = NewDocument::from_json(&fetched.body)
                .map_err(|e| FetchFailure::Failed(format!("upstream sent invalid JSON: {e}")))?;
            let now = Utc::now();
            // Applying pushed changes is not a fetch of the whole source: the schedule
            // (and with it the daily full read) keeps counting from the last one.
            doc.last_fetch = match held.as_ref().and_then(|h| h.last_fetch) {
                Some(last) if push_only => Some(last),
                _ => Some(now),
            };
            doc.last_rich_fetch = if rich { Some(now) } else { previous_rich };
            saver
                .save(&cache, doc, Precondition::None)
                .await
                .map(|doc| (doc, Refreshed::Saved))
                .map_err(|e| FetchFailure::Failed(format!("could not save: {e}")))
        };
        let fut = crate::supervisor::guard_async(ACTOR, reporter, fut);
        let source = self.caches.get(&name).map(|s| s.config.source.clone());
        ctx.spawn(fut.into_actor(self).map(move |result, refresher, ctx| {
            let calls = source.map_or(0, |s| s.upstream_calls().saturating_sub(calls_before));
            refresher.count_calls(&name, kind, reason, calls);
            let how = match &result {
                Ok(Ok((_, how))) => Some(*how),
                _ => None,
            };
            if matches!(result, Ok(Err(FetchFailure::Revoked))) {
                refresher.revoke(ctx, name.clone());
            }
            refresher.after_fetch(ctx, &name, how, reason, pushed_copy);
            match result {
                Ok(result) => refresher.finish(name, rich, due, result),
                Err(panicked) => {
                    // Already reported: answer the waiters, then restart with nothing in flight.
                    refresher.finish(name, rich, due, Err(FetchFailure::Failed(panicked.to_string())));
                    ctx.stop();
                }
            }
        }));
    }

    fn finish(
        &mut self,
        name: CacheName,
        rich: bool,
        due: Option<DateTime<Utc>>,
        result: Result<(Arc<Document>, Refreshed), FetchFailure>,
    ) {
        let Some(state) = self.caches.get_mut(&name) else { return };
        state.in_flight = false;
        let waiters = std::mem::take(&mut state.waiters);
        let label = |result: &'static str| CacheResult { cache: name.to_string(), result };
        match &result {
            Ok((doc, how)) => {
                state.last_fetch = doc.last_fetch;
                state.last_rich_fetch = doc.last_rich_fetch;
                state.not_leader_since = None;
                state.retry_at = None;
                state.blocked_until = None;
                state.failures = 0;
                state.last_error = None;
                state.last_error_at = None;
                state.backoff = Backoff::new(&self.policy.backoff);
                let now = Utc::now();
                self.metrics.refreshes.get_or_create(&label("ok")).inc();
                // A refresh result is a save like a PUT (a 304 saves nothing).
                if *how != Refreshed::NotModified {
                    self.metrics.saves.get_or_create(&label("ok")).inc();
                }
                self.metrics
                    .last_refresh_success
                    .get_or_create(&CacheLabel { cache: name.to_string() })
                    .set(now.timestamp_millis() as f64 / 1000.0);
                let lag = due.map(|d| (now - d).num_milliseconds().max(0) as f64 / 1000.0);
                if let Some(lag) = lag {
                    self.metrics.refresh_lag.get_or_create(&CacheLabel { cache: name.to_string() }).observe(lag);
                }
                let not_modified = *how == Refreshed::NotModified;
                tracing::info!(cache = %name, version = doc.version, rich, not_modified, lag_seconds = lag, "refreshed");
            }
            Err(FetchFailure::NotLeader) => {
                state.not_leader_since.get_or_insert_with(Utc::now);
                // Look again soon: if the leader dies, its lock goes with its connection.
                let every = state.config.every.unwrap_or(std::time::Duration::from_secs(60));
                let check =
                    (every / 4).clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(30));
                state.retry_at = Some(Utc::now() + chrono::Duration::from_std(check).unwrap_or_default());
                tracing::debug!(cache = %name, "another instance leads this cache's refreshes");
            }
            Err(FetchFailure::Revoked) => {
                tracing::info!(cache = %name, "deauthorized upstream (recorded by another instance); refreshes stopped");
            }
            Err(FetchFailure::RateLimited(until)) => {
                state.retry_at = Some(*until);
                state.blocked_until = Some(*until);
                self.metrics.refreshes.get_or_create(&label("rate_limited")).inc();
                tracing::warn!(cache = %name, retry_at = %until, "upstream rate limit reached; waiting for the window");
            }
            Err(FetchFailure::Failed(e)) => {
                state.failures += 1;
                state.last_error = Some(e.clone());
                state.last_error_at = Some(Utc::now());
                // Never wait longer than the schedule itself.
                let mut wait = state.backoff.next_wait();
                if let Some(every) = state.config.every {
                    wait = wait.min(every);
                }
                state.retry_at = Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
                self.metrics.refreshes.get_or_create(&label("error")).inc();
                log_failure(self.saver.files().clone(), name.clone(), e.clone(), state.failures, wait);
            }
        }
        let answer = result.map(|(doc, _)| doc).map_err(RefreshError::from);
        for w in waiters {
            let _ = w.send(answer.clone());
        }
        self.publish();
    }
}

/// Logs a failed refresh, saying whether readers still get a document: the file tier
/// (which every save reaches) is asked, so the line never promises data that is not there.
fn log_failure(files: FileHandle, cache: CacheName, error: String, failures: u32, wait: std::time::Duration) {
    actix::spawn(async move {
        let serving = files.read(cache.clone()).await.is_ok_and(|found| found.doc.is_some());
        let what = if serving {
            "refresh failed; the old data keeps being served"
        } else {
            "refresh failed; no data is served until a refresh succeeds"
        };
        tracing::warn!(
            cache = %cache, error = %error, failures, retry_in_ms = wait.as_millis() as u64,
            alert = failures >= 5, "{what}"
        );
    });
}

impl Handler<Begin> for Refresher {
    type Result = ();

    fn handle(&mut self, _msg: Begin, ctx: &mut Context<Self>) {
        self.begun = true;
        self.load_times(ctx);
        self.load_push_state(ctx);
    }
}

impl Handler<Quiesce> for Refresher {
    type Result = ();

    fn handle(&mut self, _msg: Quiesce, _ctx: &mut Context<Self>) {
        self.quiesced = true;
        tracing::info!(actor = ACTOR, "shutting down: no new refresh starts");
    }
}

impl Handler<RefreshNow> for Refresher {
    type Result = ResponseFuture<Result<Option<Arc<Document>>, RefreshError>>;

    fn handle(&mut self, msg: RefreshNow, ctx: &mut Context<Self>) -> Self::Result {
        let Some(state) = self.caches.get_mut(&msg.name) else {
            let name = msg.name.to_string();
            return Box::pin(async move { Err(RefreshError::NoSource(name)) });
        };
        if self.quiesced {
            return Box::pin(async { Err(RefreshError::Failed("shutting down: no new refresh starts".into())) });
        }
        if self.push.is_revoked(&msg.name) {
            let name = msg.name.to_string();
            return Box::pin(async move { Err(RefreshError::NoSource(name)) });
        }
        // A rate-limit window is respected by every kind of refresh.
        if let Some(until) = state.blocked_until.filter(|t| *t > Utc::now()) {
            return Box::pin(async move { Err(RefreshError::RateLimited(until)) });
        }
        // Readers waiting on an empty cache respect the backoff after a failure; an
        // operator's POST /refresh (no wait) may try again at once.
        if msg.wait && !state.in_flight {
            if let (Some(until), Some(why)) = (state.retry_at.filter(|t| *t > Utc::now()), state.last_error.clone()) {
                return Box::pin(async move { Err(RefreshError::BackingOff(until, why)) });
            }
        }
        // Joining a fetch in flight: the full read is the next one.
        state.want_full |= msg.full;
        let rx = msg.wait.then(|| {
            let (tx, rx) = oneshot::channel();
            state.waiters.push(tx);
            rx
        });
        if !state.in_flight {
            let reason = if msg.wait { Reason::Emergency } else { Reason::Manual };
            self.start_fetch(ctx, msg.name, false, None, reason);
        }
        Box::pin(async move {
            match rx {
                None => Ok(None),
                Some(rx) => match rx.await {
                    Ok(result) => result.map(Some),
                    Err(_) => Err(RefreshError::Failed("the refresher restarted during the fetch".into())),
                },
            }
        })
    }
}

impl Handler<RefreshAll> for Refresher {
    type Result = usize;

    fn handle(&mut self, _msg: RefreshAll, ctx: &mut Context<Self>) -> usize {
        if self.quiesced {
            return 0;
        }
        let now = Utc::now();
        let names: Vec<CacheName> = self
            .caches
            .iter()
            .filter(|(n, s)| !s.in_flight && s.blocked_until.is_none_or(|t| t <= now) && !self.push.is_revoked(n))
            .map(|(n, _)| n.clone())
            .collect();
        for name in &names {
            self.start_fetch(ctx, name.clone(), false, None, Reason::Manual);
        }
        names.len()
    }
}

impl Handler<Reconfigure> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        // The policy first: set_caches draws each cache's jitter from it.
        self.policy = msg.policy;
        self.set_caches(msg.caches);
        self.load_push_state(ctx);
        tracing::info!(
            actor = ACTOR,
            caches = self.caches.len(),
            fetch_timeout_ms = self.policy.fetch_timeout.as_millis() as u64,
            jitter_ms = self.policy.jitter.as_millis() as u64,
            "refresh schedules and sources reloaded"
        );
    }
}

impl Handler<Observed> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: Observed, _ctx: &mut Context<Self>) {
        if let Some(state) = self.caches.get_mut(&msg.name) {
            if msg.last_fetch > state.last_fetch {
                state.last_fetch = msg.last_fetch;
                // Someone else refreshes again: leadership counts again.
                state.not_leader_since = None;
                state.taking_over = false;
            }
            if msg.last_rich_fetch > state.last_rich_fetch {
                state.last_rich_fetch = msg.last_rich_fetch;
            }
        }
    }
}
