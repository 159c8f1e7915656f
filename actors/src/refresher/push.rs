//! Strava's webhook events inside the refresher: routed by athlete to the strava caches
//! of that athlete, queued per cache and applied by one fetch per tick (a burst of
//! events costs a handful of upstream calls), and deauthorizations that purge the
//! caches, forget their tokens and stop their schedules for good.

use super::messages::{Reason, Refreshed, StravaPush};
use super::sources::pushed::ActivityChange;
use super::sources::Source;
use super::{LastRefresh, Refresher, ACTOR};
use crate::domain::CacheName;
use crate::metrics::TypeOutcome;
use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a pushed event asks for, once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAction {
    /// An activity was created, updated or deleted.
    Activity(ActivityChange),
    /// The athlete withdrew the app's access.
    Deauthorize,
    /// Nothing to do (e.g. an athlete profile update).
    Ignore,
}

/// The refresher's webhook state.
#[derive(Default)]
pub(super) struct PushState {
    /// Athlete id per strava cache, as its source knows it.
    athletes: HashMap<CacheName, u64>,
    /// Changes not yet applied, per cache, in arrival order.
    pending: HashMap<CacheName, Vec<ActivityChange>>,
    /// Caches whose athlete deauthorized the app: no fetch of any kind.
    revoked: HashSet<CacheName>,
}

impl PushState {
    pub(super) fn is_revoked(&self, name: &CacheName) -> bool {
        self.revoked.contains(name)
    }

    /// The pending changes of `name`, now handed to a fetch.
    pub(super) fn take(&mut self, name: &CacheName) -> Vec<ActivityChange> {
        self.pending.remove(name).unwrap_or_default()
    }

    /// A fetch failed: its changes wait for the next one, ahead of newer ones.
    pub(super) fn requeue(&mut self, name: &CacheName, mut changes: Vec<ActivityChange>) {
        if changes.is_empty() || self.revoked.contains(name) {
            return;
        }
        let entry = self.pending.entry(name.clone()).or_default();
        changes.append(entry);
        *entry = changes;
    }

    fn pending_names(&self) -> Vec<CacheName> {
        self.pending.iter().filter(|(_, c)| !c.is_empty()).map(|(n, _)| n.clone()).collect()
    }
}

fn strava_sources(refresher: &Refresher) -> Vec<(CacheName, Arc<dyn Source>)> {
    refresher
        .caches
        .iter()
        .filter(|(_, s)| s.config.source.as_strava().is_some())
        .map(|(n, s)| (n.clone(), s.config.source.clone()))
        .collect()
}

impl Refresher {
    /// Learns from each strava source (no upstream call) its athlete and whether it
    /// was deauthorized; before any schedule runs (startup) and after a reload.
    pub(super) fn load_push_state(&mut self, ctx: &mut Context<Self>) {
        let sources = strava_sources(self);
        let fut = async move {
            let mut known = Vec::new();
            for (name, source) in sources {
                let Some(strava) = source.as_strava() else { continue };
                known.push((name, strava.known_athlete_id().await, strava.revoked().await));
            }
            known
        };
        ctx.wait(fut.into_actor(self).map(|known, refresher, _| {
            refresher.push.athletes.clear();
            refresher.push.revoked.clear();
            for (name, athlete, revoked) in known {
                if let Some(id) = athlete {
                    refresher.push.athletes.insert(name.clone(), id);
                }
                if revoked {
                    tracing::info!(cache = %name, "the Strava athlete deauthorized the app; no refresh until the credentials change");
                    refresher.push.revoked.insert(name);
                }
            }
        }));
    }

    /// Starts one fetch for each cache with pending changes that may fetch now.
    pub(super) fn start_pushed(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        for name in self.push.pending_names() {
            let ready = self.caches.get(&name).is_some_and(|s| {
                !s.in_flight
                    && s.blocked_until.is_none_or(|t| t <= now)
                    && s.retry_at.is_none_or(|t| t <= now || s.last_error.is_none())
            });
            if ready && !self.push.is_revoked(&name) {
                self.start_fetch(ctx, name, false, None, Reason::Webhook);
            }
        }
    }

    fn count_event(&self, kind: &str, outcome: &'static str) {
        self.metrics.webhook_events.get_or_create(&TypeOutcome { r#type: kind.to_owned(), outcome }).inc();
    }

    /// Hands `msg` to the caches of its athlete.
    fn route(&mut self, ctx: &mut Context<Self>, msg: &StravaPush) {
        let matched: Vec<CacheName> = self
            .push
            .athletes
            .iter()
            .filter(|(name, id)| **id == msg.owner_id && !self.push.is_revoked(name) && self.caches.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        if matched.is_empty() || msg.action == PushAction::Ignore {
            tracing::debug!(kind = %msg.kind, matched = matched.len(), "webhook event ignored");
            return self.count_event(&msg.kind, "ignored");
        }
        match msg.action {
            PushAction::Activity(change) => {
                for name in matched {
                    self.push.pending.entry(name).or_default().push(change);
                }
                self.count_event(&msg.kind, "queued");
            }
            PushAction::Deauthorize => {
                for name in matched {
                    self.revoke(ctx, name);
                }
                self.count_event(&msg.kind, "deauthorized");
            }
            PushAction::Ignore => {}
        }
    }

    /// The athlete deauthorized the app: no more fetches of `name`, its tokens are
    /// forgotten and it is purged from every tier as `DELETE` does.
    pub(super) fn revoke(&mut self, ctx: &mut Context<Self>, name: CacheName) {
        self.push.revoked.insert(name.clone());
        self.push.pending.remove(&name);
        let Some(state) = self.caches.get_mut(&name) else { return };
        for w in std::mem::take(&mut state.waiters) {
            let _ = w.send(Err(super::RefreshError::NoSource(name.to_string())));
        }
        let source = state.config.source.clone();
        let saver = self.saver.clone();
        ctx.spawn(
            async move {
                if let Some(strava) = source.as_strava() {
                    if let Err(e) = strava.forget().await {
                        tracing::error!(cache = %name, error = %e, alert = true, "could not forget the deauthorized athlete's tokens");
                    }
                }
                match saver.purge(&name).await {
                    Ok(_) => tracing::warn!(cache = %name, alert = true,
                        "the Strava athlete deauthorized the app: cache purged everywhere, refresh tokens deleted, refreshes stopped"),
                    Err(e) => tracing::error!(cache = %name, error = %e, alert = true, "could not purge the deauthorized athlete's cache"),
                }
            }
            .into_actor(self),
        );
    }

    /// A fetch of `name` ended: a success is published for meta, changes of a failed
    /// one wait for the next; a cache
    /// revoked during the fetch is purged again (the fetch may have saved after the
    /// first purge).
    pub(super) fn after_fetch(
        &mut self,
        ctx: &mut Context<Self>,
        name: &CacheName,
        how: Option<Refreshed>,
        reason: Reason,
        pushed: Vec<ActivityChange>,
    ) {
        match how {
            None => self.push.requeue(name, pushed),
            Some(how) => {
                let last = LastRefresh { reason: reason.as_str(), result: how.as_str(), at: Utc::now() };
                self.view.record(name, last);
            }
        }
        if self.push.is_revoked(name) {
            let saver = self.saver.clone();
            let name = name.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = saver.purge(&name).await {
                        tracing::error!(actor = ACTOR, cache = %name, error = %e, alert = true, "could not purge a deauthorized cache");
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<StravaPush> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: StravaPush, ctx: &mut Context<Self>) {
        self.metrics.webhook_last_event.set(Utc::now().timestamp_millis() as f64 / 1000.0);
        let unknown: Vec<(CacheName, Arc<dyn Source>)> = strava_sources(self)
            .into_iter()
            .filter(|(name, _)| !self.push.athletes.contains_key(name) && !self.push.is_revoked(name))
            .collect();
        if unknown.is_empty() || self.quiesced {
            return self.route(ctx, &msg);
        }
        // Asked once per cache: afterwards the id is in the source's state.
        let timeout = self.policy.fetch_timeout;
        let fut = async move {
            let mut learned = Vec::new();
            for (name, source) in unknown {
                let before = source.upstream_calls();
                if let Some(id) = source.as_strava().map(|s| s.athlete_id(timeout)) {
                    learned.push((name, id.await, source.upstream_calls() - before));
                }
            }
            learned
        };
        ctx.spawn(fut.into_actor(self).map(move |learned, refresher, ctx| {
            for (name, id, calls) in learned {
                refresher.count_calls(&name, "strava", Reason::Webhook, calls);
                if let Some(id) = id {
                    refresher.push.athletes.insert(name, id);
                }
            }
            refresher.route(ctx, &msg);
        }));
    }
}
