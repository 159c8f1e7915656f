//! Handlers, the tick that starts due fetches, and what a fetch's end does to the
//! cache's schedule (the fetch itself is `fetch.rs`'s).

use super::fetch::{leader_silent, Asked, Base, FetchJob, FetchResult, Scope, Takeover};
use super::messages::{Begin, FetchFailure, Observed, Quiesce, Reason, Reconfigure, RefreshAll, RefreshNow, Refreshed};
use super::schedule::{due_at, Due};
use super::sources::pushed::Pushed;
use super::sources::Source;
use super::{RefreshError, Refresher, ACTOR};
use crate::domain::{CacheName, Document};
use crate::files::FileHandle;
use crate::metrics::{CacheLabel, CacheResult};
use crate::retry_queue::backoff::Backoff;
use crate::supervisor::{guard, spawn_guarded, ActorId, ActorPanicked, FailureReporter, GuardedContext};
use actix::{ActorContext, ActorFutureExt, Context, Handler, ResponseFuture, WrapFuture};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What the actor remembers of a fetch it started, to account for its end.
struct Started {
    name: CacheName,
    rich: bool,
    /// When it was due (for the lag metric); `None` on demand.
    due: Option<DateTime<Utc>>,
    reason: Reason,
    /// The pushed work it carries: what it does not do is queued again.
    pushed: Pushed,
    /// The source that fetched, and its upstream call count before the fetch.
    source: Arc<dyn Source>,
    calls_before: u64,
}

impl Refresher {
    /// Reads each cache's fetch times from the file tier's index.
    pub(super) fn load_times(&mut self, ctx: &mut Context<Self>) {
        let files = self.saver_files();
        ctx.wait_guarded(
            ACTOR,
            &self.reporter,
            async move { files.list().await }.into_actor(self).map(|index, refresher, _| match index {
                Ok(index) => {
                    fail::fail_point!("refresher::load_times");
                    for (name, state) in &mut refresher.caches {
                        if let Some(d) = index.get(name).filter(|d| d.etag.is_some()) {
                            state.last_fetch = d.last_fetch;
                            state.last_rich_fetch = d.last_rich_fetch;
                        }
                    }
                    refresher.publish();
                }
                Err(e) => {
                    tracing::error!(actor = ACTOR, error = %e, "cannot read fetch times; every cache counts as overdue")
                }
            }),
        );
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
        let Some((job, started)) = self.prepare_fetch(name, rich, due, reason) else { return };
        let fut = crate::supervisor::guard_async(ACTOR, reporter.clone(), job.run());
        let ended = fut.into_actor(self).map(move |result, refresher, ctx| refresher.fetch_ended(ctx, started, result));
        ctx.spawn_guarded(ACTOR, &reporter, ended);
    }

    /// Marks `name` in flight and takes from its state what the fetch needs; `None`
    /// when it is unknown or already in flight.
    fn prepare_fetch(
        &mut self,
        name: CacheName,
        rich: bool,
        due: Option<DateTime<Utc>>,
        reason: Reason,
    ) -> Option<(FetchJob, Started)> {
        let state = self.caches.get_mut(&name).filter(|s| !s.in_flight)?;
        state.in_flight = true;
        let source = state.config.source.clone();
        // No fresh result since then, while another instance leads: past a few periods
        // of that, this instance refreshes anyway (the lock is only advisory: any role
        // can hold it, see `leader_silent`).
        let silent_since = state.not_leader_since.max(state.last_fetch);
        let newly_taking_over = !state.taking_over && leader_silent(silent_since, state.config.every);
        state.taking_over |= newly_taking_over;
        let full = std::mem::take(&mut state.want_full);
        let reason = if full { Reason::Full } else { reason };
        // Pushed changes ride on any fetch; a webhook's own fetch does only pushed work.
        let pushed = self.push.take(&name, reason);
        let job = FetchJob {
            cache: name.clone(),
            saver: self.saver.clone(),
            metrics: self.metrics.clone(),
            leader: self.leader.clone(),
            timeout: self.policy.fetch_timeout,
            rich,
            full,
            asked: if due.is_none() { Asked::OnDemand } else { Asked::Scheduled },
            scope: if reason == Reason::Webhook { Scope::PushedOnly } else { Scope::Everything },
            pushed: pushed.clone(),
            takeover: match (state.taking_over, newly_taking_over) {
                (_, true) => Takeover::Starts,
                (true, false) => Takeover::Continues,
                (false, false) => Takeover::No,
            },
            known_fetch: state.last_fetch,
            previous_rich: state.last_rich_fetch,
            base: if rich || source.builds_on_previous() { Base::HeldDocument } else { Base::HeldVersion },
            source: source.clone(),
        };
        let calls_before = source.upstream_calls();
        let started = Started { name, rich, due, reason, pushed, source, calls_before };
        Some((job, started))
    }

    /// A fetch ended (or its task panicked): counts its calls, records it, answers.
    fn fetch_ended(&mut self, ctx: &mut Context<Self>, started: Started, result: Result<FetchResult, ActorPanicked>) {
        let Started { name, rich, due, reason, pushed, source, calls_before } = started;
        let calls = source.upstream_calls().saturating_sub(calls_before);
        self.count_calls(&name, source.kind(), reason, calls);
        let how = match &result {
            Ok(Ok((_, how))) => Some(*how),
            _ => None,
        };
        if matches!(result, Ok(Err(FetchFailure::Revoked))) {
            self.revoke(ctx, name.clone());
        }
        if how == Some(Refreshed::Superseded) && reason == Reason::Full {
            if let Some(state) = self.caches.get_mut(&name) {
                state.want_full = true;
            }
        }
        self.after_fetch(ctx, &name, how, reason, pushed, &source);
        match result {
            Ok(result) => self.finish(name, rich, due, result),
            Err(panicked) => {
                // Already reported: answer the waiters, then restart with nothing in flight.
                self.finish(name, rich, due, Err(FetchFailure::Failed(panicked.to_string())));
                ctx.stop();
            }
        }
    }

    fn finish(&mut self, name: CacheName, rich: bool, due: Option<DateTime<Utc>>, result: FetchResult) {
        let Some(state) = self.caches.get_mut(&name) else { return };
        state.in_flight = false;
        let waiters = std::mem::take(&mut state.waiters);
        match &result {
            Ok((doc, how)) => self.succeeded(&name, rich, due, doc, *how),
            Err(failure) => self.failed(&name, failure),
        }
        let answer = result.map(|(doc, _)| doc).map_err(RefreshError::from);
        for w in waiters {
            let _ = w.send(answer.clone());
        }
        self.publish();
    }

    /// A fetch succeeded: the schedule starts again from its fetch times.
    fn succeeded(&mut self, name: &CacheName, rich: bool, due: Option<DateTime<Utc>>, doc: &Document, how: Refreshed) {
        if how == Refreshed::Unchanged {
            // Pushed work that changed nothing says nothing about the schedule's health.
            tracing::debug!(cache = %name, "webhook fetch changed nothing");
            return;
        }
        if how == Refreshed::Superseded {
            // The save that landed meanwhile moved the schedule (a PUT counts as a
            // fetch); a full read asked for is still owed (see `fetch_ended`).
            let label = CacheResult { cache: name.to_string(), result: "superseded" };
            self.metrics.refreshes.get_or_create(&label).inc();
            return;
        }
        let Some(state) = self.caches.get_mut(name) else { return };
        state.last_fetch = doc.last_fetch;
        state.last_rich_fetch = doc.last_rich_fetch;
        state.not_leader_since = None;
        state.blocked_until = None;
        state.clear_failure(Backoff::new(&self.policy.backoff));
        let now = Utc::now();
        let label = |result: &'static str| CacheResult { cache: name.to_string(), result };
        self.metrics.refreshes.get_or_create(&label("ok")).inc();
        // A refresh result is a save like a PUT (a 304 saves nothing).
        if how != Refreshed::NotModified {
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
        let not_modified = how == Refreshed::NotModified;
        tracing::info!(cache = %name, version = doc.version, rich, not_modified, lag_seconds = lag, "refreshed");
    }

    /// A fetch failed: when to try again, and what meta and the log say.
    fn failed(&mut self, name: &CacheName, failure: &FetchFailure) {
        let Some(state) = self.caches.get_mut(name) else { return };
        let label = |result: &'static str| CacheResult { cache: name.to_string(), result };
        match failure {
            FetchFailure::NotLeader => {
                state.not_leader_since.get_or_insert_with(Utc::now);
                // Look again soon: if the leader dies, its lock goes with its connection.
                let every = state.config.every.unwrap_or(std::time::Duration::from_secs(60));
                let check =
                    (every / 4).clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(30));
                state.retry_at = Some(Utc::now() + chrono::Duration::from_std(check).unwrap_or_default());
                tracing::debug!(cache = %name, "another instance leads this cache's refreshes");
            }
            FetchFailure::Revoked => {
                tracing::info!(cache = %name, "deauthorized upstream; refreshes stopped");
            }
            FetchFailure::RateLimited(until) => {
                state.retry_at = Some(*until);
                state.blocked_until = Some(*until);
                self.metrics.refreshes.get_or_create(&label("rate_limited")).inc();
                tracing::warn!(cache = %name, retry_at = %until, "upstream rate limit reached; waiting for the window");
            }
            FetchFailure::Failed(e) => {
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
                let files = self.saver.files().clone();
                log_failure(files, name.clone(), e.clone(), state.failures, wait, self.reporter.clone());
            }
        }
    }
}

/// Logs a failed refresh, saying whether readers still get a document: the file tier
/// (which every save reaches) is asked, so the line never promises data that is not there.
fn log_failure(
    files: FileHandle,
    cache: CacheName,
    error: String,
    failures: u32,
    wait: std::time::Duration,
    reporter: FailureReporter,
) {
    spawn_guarded(ActorId::Refresher, reporter, async move {
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
        if let Some(deauthorized) = self.push.revoked(&msg.name) {
            let explained = deauthorized.explain(&msg.name);
            return Box::pin(async move { Err(RefreshError::Deauthorized(explained)) });
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
        let fresh_backoff = Backoff::new(&self.policy.backoff);
        if let Some(state) = self.caches.get_mut(&msg.name) {
            if msg.last_fetch > state.last_fetch {
                state.last_fetch = msg.last_fetch;
                // Someone else refreshes again: leadership counts again.
                state.not_leader_since = None;
                state.taking_over = false;
                // A document fetched (or PUT) after the last failure replaces what that
                // refresh was for: the failure no longer stands between the cache and
                // its data, and the schedule counts from the new document, not from a
                // retry of the old failure.
                if state.last_error_at.is_some_and(|failed| msg.last_fetch.is_some_and(|fetched| fetched >= failed)) {
                    state.clear_failure(fresh_backoff);
                }
            }
            if msg.last_rich_fetch > state.last_rich_fetch {
                state.last_rich_fetch = msg.last_rich_fetch;
            }
            self.publish();
        }
    }
}
