//! Strava's webhook events inside the refresher. An event is a hint, never an order:
//! it is routed by athlete to that athlete's strava caches and only ever makes their
//! source ask Strava, in a webhook fetch (one per cache at a time, like every fetch),
//! within the share of the rate budget reserved for pushed work. Strava's answer
//! decides: a deauthorization purges a cache only once Strava confirms it.
//!
//! The per-cache bookkeeping (coalescing, missing ids, rate-limited questions) is
//! `push_state.rs`'s; here are the routing, the intake bound and what a verdict does.

use super::messages::{Reason, Refreshed, StravaPush};
use super::push_state::CachePush;
use super::sources::pushed::{ActivityChange, Pushed, Verdict};
use super::sources::Source;
use super::view::Deauthorized;
use super::{LastRefresh, Refresher, ACTOR};
use crate::domain::CacheName;
use crate::metrics::TypeOutcome;
use crate::supervisor::GuardedContext;
use actix::{ActorFutureExt, Context, Handler, WrapFuture};
use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events handed to the refresher and not yet taken in; more are dropped (and
/// counted) by [`super::RefresherHandle::strava_push`].
pub const MAX_QUEUED_EVENTS: usize = 1_000;

/// Most events kept while an athlete id is being asked for.
const MAX_UNROUTED: usize = 1_000;

/// At most one warning a minute about forged deauthorizations.
const FORGED_WARNING_EVERY: Duration = Duration::from_secs(60);

/// What a pushed event asks for, once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAction {
    /// An activity was created, updated or deleted.
    Activity(ActivityChange),
    /// The athlete says they withdrew the app's access (to be confirmed with Strava).
    Deauthorize,
    /// Nothing to do (e.g. an athlete profile update).
    Ignore,
}

/// A Strava event as the refresher needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushEvent {
    /// The athlete (`owner_id`).
    pub owner_id: u64,
    /// Its type label, from [`event_type`]'s fixed set.
    pub kind: &'static str,
    /// What it asks for.
    pub action: PushAction,
}

/// The `type` label of `tiercache_webhook_events_total`: one of a fixed set, never the
/// event's own strings (anyone can post an event).
pub fn event_type(object_type: &str, aspect_type: &str) -> &'static str {
    match (object_type, aspect_type) {
        ("activity", "create") => "activity.create",
        ("activity", "update") => "activity.update",
        ("activity", "delete") => "activity.delete",
        ("athlete", "update") => "athlete.update",
        ("athlete", _) => "athlete.other",
        _ => "other",
    }
}

/// Counts the events handed to the refresher and not yet taken in.
#[derive(Debug, Default)]
pub(super) struct PushIntake {
    queued: AtomicUsize,
}

impl PushIntake {
    /// A place for one more event, unless [`MAX_QUEUED_EVENTS`] wait already.
    pub(super) fn enter(self: &Arc<Self>) -> Option<IntakeTicket> {
        let taken =
            self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_QUEUED_EVENTS).then_some(n + 1));
        taken.ok().map(|_| IntakeTicket(self.clone()))
    }
}

/// One event's place in the intake, freed when dropped.
#[derive(Debug)]
pub struct IntakeTicket(Arc<PushIntake>);

impl Drop for IntakeTicket {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The refresher's webhook state.
#[derive(Default)]
pub(super) struct PushState {
    /// Athlete id per strava cache, as its source knows it.
    athletes: HashMap<CacheName, u64>,
    /// Pushed work per cache.
    caches: HashMap<CacheName, CachePush>,
    /// Caches whose athlete deauthorized the app (Strava confirmed): no fetch of any kind.
    revoked: HashMap<CacheName, Deauthorized>,
    /// Events of unknown athletes, kept while a cache's athlete id is being asked for.
    unrouted: VecDeque<PushEvent>,
    /// When forged deauthorizations were last warned about.
    forged_warned_at: Option<Instant>,
}

impl PushState {
    pub(super) fn is_revoked(&self, name: &CacheName) -> bool {
        self.revoked.contains_key(name)
    }

    /// Why `name` is deauthorized, if it is.
    pub(super) fn revoked(&self, name: &CacheName) -> Option<&Deauthorized> {
        self.revoked.get(name)
    }

    /// The pushed work a fetch of `name` carries: a webhook fetch what is due, any
    /// other fetch the pending changes.
    pub(super) fn take(&mut self, name: &CacheName, reason: Reason) -> Pushed {
        match self.caches.get_mut(name) {
            Some(push) => push.take(Instant::now(), reason == Reason::Webhook),
            None => Pushed::default(),
        }
    }

    /// The actor restarted: fetches in flight died without settling their pushed work.
    pub(super) fn restarted(&mut self) {
        for push in self.caches.values_mut() {
            push.restarted();
        }
    }

    fn due(&self, name: &CacheName, now: Instant) -> bool {
        self.caches.get(name).is_some_and(|p| p.due(now))
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
                known.push((name, strava.known_athlete_id().await, strava.deauthorization().await));
            }
            known
        };
        ctx.wait_guarded(
            ACTOR,
            &self.reporter,
            fut.into_actor(self).map(|known, refresher, _| {
                refresher.push.athletes.clear();
                refresher.push.revoked.clear();
                refresher.push.caches.retain(|name, _| refresher.caches.contains_key(name));
                for (name, athlete, deauthorization) in known {
                    if let Some(id) = athlete {
                        refresher.push.athletes.insert(name.clone(), id);
                    }
                    if let Some(d) = deauthorization {
                        let deauthorized = Deauthorized { at: d.at, why: d.why };
                        tracing::warn!(cache = %name, alert = true, "{}", deauthorized.explain(&name));
                        refresher.push.caches.remove(&name);
                        refresher.push.revoked.insert(name, deauthorized);
                    }
                }
                refresher.publish_deauthorized();
            }),
        );
    }

    fn publish_deauthorized(&self) {
        self.view.publish_deauthorized(self.push.revoked.clone());
    }

    /// Starts one webhook fetch for each cache whose pushed work is due and that may
    /// fetch now: not in flight, not waiting on upstream's rate limit or a failure's
    /// backoff, holding a document (without one, the next scheduled or emergency fetch
    /// reads everything anyway), and within the share of the budget for pushed work.
    pub(super) fn start_pushed(&mut self, ctx: &mut Context<Self>) {
        let (now, instant) = (Utc::now(), Instant::now());
        let due: Vec<CacheName> = self.push.caches.keys().filter(|n| self.push.due(n, instant)).cloned().collect();
        for name in due {
            let ready = self.caches.get(&name).is_some_and(|s| {
                !s.in_flight
                    && s.last_fetch.is_some()
                    && s.blocked_until.is_none_or(|t| t <= now)
                    && s.retry_at.is_none_or(|t| t <= now || s.last_error.is_none())
                    && s.config.source.as_strava().is_none_or(|strava| strava.pushed_share_left().is_ok())
            });
            if ready && !self.push.is_revoked(&name) {
                self.start_fetch(ctx, name, false, None, Reason::Webhook);
            }
        }
    }

    fn count_event(&self, kind: &'static str, outcome: &'static str, n: u64) {
        if n > 0 {
            self.metrics.webhook_events.get_or_create(&TypeOutcome { r#type: kind, outcome }).inc_by(n);
        }
    }

    /// Hands `event` to the caches of its athlete; an event of an unknown athlete
    /// waits while a cache whose athlete is unknown asks for it.
    fn route(&mut self, event: PushEvent) {
        if event.action == PushAction::Ignore {
            return self.count_event(event.kind, "ignored", 1);
        }
        let matched: Vec<CacheName> = self
            .push
            .athletes
            .iter()
            .filter(|(name, id)| {
                **id == event.owner_id && !self.push.is_revoked(name) && self.caches.contains_key(*name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if matched.is_empty() {
            return self.route_unknown(event);
        }
        let now = Instant::now();
        match event.action {
            PushAction::Activity(change) => {
                let mut taken = false;
                for name in matched {
                    taken |= self.push.caches.entry(name).or_default().add(change, now);
                }
                self.count_event(event.kind, if taken { "queued" } else { "ignored" }, 1);
            }
            PushAction::Deauthorize => {
                // Counted once Strava has answered: `deauthorized` or `forged`.
                for name in matched {
                    self.push.caches.entry(name).or_default().want_confirmation();
                }
            }
            PushAction::Ignore => {}
        }
    }

    /// No cache is known to belong to `event`'s athlete: if some cache's athlete is
    /// not known yet (and it holds a document to apply events to), it is asked, at
    /// most once per few minutes, and the event waits for the answer.
    fn route_unknown(&mut self, event: PushEvent) {
        let now = Instant::now();
        let unknown: Vec<CacheName> = self
            .caches
            .iter()
            .filter(|(name, s)| {
                s.config.source.as_strava().is_some()
                    && s.last_fetch.is_some()
                    && !self.push.athletes.contains_key(*name)
                    && !self.push.is_revoked(name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut asking = false;
        for name in unknown {
            asking |= self.push.caches.entry(name).or_default().want_athlete(now);
        }
        if !asking {
            return self.count_event(event.kind, "ignored", 1);
        }
        if self.push.unrouted.len() >= MAX_UNROUTED {
            return self.count_event(event.kind, "dropped", 1);
        }
        self.push.unrouted.push_back(event);
    }

    /// Routes the events that waited for athlete ids, once no cache is asking.
    fn route_waiting(&mut self) {
        if self.push.caches.values().any(CachePush::learning) {
            return;
        }
        let waiting = std::mem::take(&mut self.push.unrouted);
        let known: Vec<u64> = self.push.athletes.values().copied().collect();
        for event in waiting {
            if known.contains(&event.owner_id) {
                self.route(event);
            } else {
                self.count_event(event.kind, "ignored", 1);
            }
        }
    }

    /// The athlete deauthorized the app, as Strava confirmed (or another instance
    /// recorded): no more fetches of `name`, its stored tokens are forgotten (never a
    /// file the operator wrote) and it is purged from every tier as `DELETE` does.
    pub(super) fn revoke(&mut self, ctx: &mut Context<Self>, name: CacheName) {
        let source = self.caches.get(&name).map(|s| s.config.source.clone());
        let why = "the upstream account withdrew this app's authorization".to_owned();
        self.push.revoked.entry(name.clone()).or_insert(Deauthorized { at: Some(Utc::now()), why });
        self.publish_deauthorized();
        let Some(state) = self.caches.get_mut(&name) else { return };
        let explained = self.push.revoked[&name].explain(&name);
        for w in std::mem::take(&mut state.waiters) {
            let _ = w.send(Err(super::RefreshError::Deauthorized(explained.clone())));
        }
        let saver = self.saver.clone();
        // The purge comes after the reason is recorded, so whoever sees the cache gone
        // also reads why (Strava's words) in its meta.
        let forget = async move {
            let mut recorded = None;
            if let Some(strava) = source.as_ref().and_then(|s| s.as_strava()) {
                match strava.forget().await {
                    Ok(d) => recorded = Some(Deauthorized { at: d.at, why: d.why }),
                    Err(e) => tracing::error!(cache = %name, error = %e, alert = true,
                        "could not record the deauthorization or forget the athlete's tokens"),
                }
            }
            (name, recorded)
        };
        ctx.spawn_guarded(
            ACTOR,
            &self.reporter,
            forget.into_actor(self).then(move |(name, recorded), refresher, _| {
                if let Some(recorded) = recorded {
                    tracing::warn!(cache = %name, alert = true, "{}", recorded.explain(&name));
                    refresher.push.revoked.insert(name.clone(), recorded);
                    refresher.publish_deauthorized();
                }
                async move {
                    if let Err(e) = saver.purge(&name).await {
                        tracing::error!(cache = %name, error = %e, alert = true,
                            "could not purge the deauthorized cache");
                    }
                }
                .into_actor(refresher)
            }),
        );
    }

    /// A fetch of `name` that carried `pushed` ended: a success is published for meta;
    /// the source's report settles the pushed work (what was not applied comes back,
    /// missing ids are remembered, a verdict is acted on); a cache revoked during the
    /// fetch is purged again (the fetch may have saved after the first purge).
    pub(super) fn after_fetch(
        &mut self,
        ctx: &mut Context<Self>,
        name: &CacheName,
        how: Option<Refreshed>,
        reason: Reason,
        pushed: Pushed,
        source: &Arc<dyn Source>,
    ) {
        if let Some(how) = how.filter(|h| *h != Refreshed::Unchanged) {
            let last = LastRefresh { reason: reason.as_str(), result: how.as_str(), at: Utc::now() };
            self.view.record(name, last);
        }
        if how.is_none() {
            // A 429 above all: the gauge shows the spent window.
            self.publish_rate_limits(name, source.as_ref());
        }
        if let Some(strava) = source.as_strava() {
            let report = strava.take_push_report();
            let push = self.push.caches.entry(name.clone()).or_default();
            // Pushed work of a dropped result is carried over like that of a failed fetch.
            let dropped = how.is_none_or(|h| h == Refreshed::Superseded);
            let settled = push.settle(pushed, report, dropped, Instant::now());
            if self.push.is_revoked(name) || !self.caches.contains_key(name) {
                self.push.caches.remove(name);
            }
            if let Some(athlete) = settled.athlete {
                self.push.athletes.insert(name.clone(), athlete);
            }
            if let Some((verdict, events)) = settled.verdict {
                self.verdict(name, verdict, events);
            }
            self.route_waiting();
        }
        if self.push.is_revoked(name) {
            let saver = self.saver.clone();
            let name = name.clone();
            ctx.spawn_guarded(
                ACTOR,
                &self.reporter,
                async move {
                    if let Err(e) = saver.purge(&name).await {
                        tracing::error!(actor = ACTOR, cache = %name, error = %e, alert = true, "could not purge a deauthorized cache");
                    }
                }
                .into_actor(self),
            );
        }
    }

    /// Strava answered whether the athlete of `name` deauthorized the app (`events`
    /// events asked). A confirmation was acted on already (the fetch failed as
    /// revoked); anything else changes nothing.
    fn verdict(&mut self, name: &CacheName, verdict: Verdict, events: u64) {
        let kind = "athlete.update";
        match verdict {
            Verdict::Confirmed(why) => {
                tracing::info!(cache = %name, error = %why, "Strava confirmed the athlete's deauthorization");
                self.count_event(kind, "deauthorized", events);
            }
            Verdict::Refuted(why) | Verdict::Unknown(why) => {
                self.count_event(kind, "forged", events);
                let now = Instant::now();
                if self.push.forged_warned_at.is_none_or(|t| now.duration_since(t) >= FORGED_WARNING_EVERY) {
                    self.push.forged_warned_at = Some(now);
                    tracing::warn!(cache = %name, error = %why, events,
                        "a webhook deauthorization that Strava did not confirm was ignored (forged, or Strava \
                         could not be asked); nothing changed");
                } else {
                    tracing::debug!(cache = %name, error = %why, events, "unconfirmed webhook deauthorization ignored");
                }
            }
        }
    }
}

impl Handler<StravaPush> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: StravaPush, _ctx: &mut Context<Self>) {
        self.metrics.webhook_last_event.set(Utc::now().timestamp_millis() as f64 / 1000.0);
        if self.quiesced {
            return self.count_event(msg.event.kind, "ignored", 1);
        }
        self.route(msg.event);
    }
}
