//! The refresher's bookkeeping of pushed work for one cache, as pure functions of the
//! time: what is pending, when the next webhook fetch may start, which activity ids
//! Strava does not have, and the deauthorization and athlete questions waiting.
//!
//! Decided (docs/sources.md, "What an event costs"):
//! - events coalesce into one fetch per [`COALESCE`]; after a list read that found
//!   none of the ids it was read for (forged events, most likely), the window doubles,
//!   up to [`MAX_WINDOW`], and a fruitful read brings it back;
//! - an id Strava does not have costs nothing more for [`MISSING_FOR`] (at most
//!   [`MAX_MISSING`] such ids per cache, the oldest forgotten first);
//! - Strava is asked to confirm a deauthorization at most once per [`CONFIRM_EVERY`],
//!   and for the athlete id at most once per [`LEARN_EVERY`].

use super::sources::pushed::{ActivityChange, PendingSet, PushReport, Pushed, Verdict};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The coalescing window: one webhook fetch per cache per this much.
pub const COALESCE: Duration = Duration::from_secs(2);
/// The longest the window grows after list reads that found nothing.
pub const MAX_WINDOW: Duration = Duration::from_secs(120);
/// How long events about an id Strava does not have are ignored.
pub const MISSING_FOR: Duration = Duration::from_secs(15 * 60);
/// Most ids remembered as missing per cache.
pub const MAX_MISSING: usize = 10_000;
/// At most one deauthorization check per cache per this much.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(60);
/// At most one athlete-id question per cache per this much.
pub const LEARN_EVERY: Duration = Duration::from_secs(5 * 60);

/// The coalescing window after `fruitless` list reads in a row that found nothing.
pub fn window(fruitless: u32) -> Duration {
    COALESCE.saturating_mul(1u32.checked_shl(fruitless.min(16)).unwrap_or(u32::MAX)).min(MAX_WINDOW)
}

/// Ids Strava does not have, each until it expires; bounded.
#[derive(Debug, Default)]
struct Missing {
    until: HashMap<u64, Instant>,
    order: VecDeque<(u64, Instant)>,
}

impl Missing {
    fn contains(&self, id: u64, now: Instant) -> bool {
        self.until.get(&id).is_some_and(|t| *t > now)
    }

    fn insert(&mut self, id: u64, now: Instant) {
        while self.order.front().is_some_and(|(_, t)| *t <= now) || self.order.len() >= MAX_MISSING {
            let Some((old, t)) = self.order.pop_front() else { break };
            if self.until.get(&old) == Some(&t) {
                self.until.remove(&old);
            }
        }
        let until = now + MISSING_FOR;
        self.until.insert(id, until);
        self.order.push_back((id, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len()
    }
}

/// What the refresher learns when a fetch that carried pushed work ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Strava's verdict on a deauthorization, and how many events asked for it.
    pub verdict: Option<(Verdict, u64)>,
    /// The athlete id the fetch learnt.
    pub athlete: Option<u64>,
}

/// Pushed work of one cache.
#[derive(Debug, Default)]
pub struct CachePush {
    pending: PendingSet,
    /// No webhook fetch for changes before this.
    changes_not_before: Option<Instant>,
    /// List reads in a row that found none of their ids.
    fruitless: u32,
    missing: Missing,
    /// Deauthorization events waiting for Strava's answer.
    confirm_events: u64,
    /// ... of which the fetch in flight asks about this many.
    confirm_in_flight: u64,
    confirm_not_before: Option<Instant>,
    /// An event of an unknown athlete arrived: ask whose activities these are.
    learn_wanted: bool,
    learning: bool,
    learn_not_before: Option<Instant>,
}

fn passed(t: Option<Instant>, now: Instant) -> bool {
    t.is_none_or(|t| t <= now)
}

impl CachePush {
    /// Takes an activity change in; `false` when its id is known to be missing at
    /// Strava (ignored: it costs nothing).
    pub fn add(&mut self, change: ActivityChange, now: Instant) -> bool {
        if self.missing.contains(change.id, now) {
            return false;
        }
        self.pending.insert(change);
        true
    }

    /// A deauthorization event arrived: ask Strava (once per [`CONFIRM_EVERY`]).
    pub fn want_confirmation(&mut self) {
        self.confirm_events += 1;
    }

    /// An event of an unknown athlete arrived while this cache's athlete is unknown:
    /// `true` when the question is (or will soon be) asked, `false` while it waits
    /// for [`LEARN_EVERY`] to pass since the last one.
    pub fn want_athlete(&mut self, now: Instant) -> bool {
        if self.learning || self.learn_wanted {
            return true;
        }
        if !passed(self.learn_not_before, now) {
            return false;
        }
        self.learn_wanted = true;
        true
    }

    /// Whether the athlete question is asked or about to be.
    pub fn learning(&self) -> bool {
        self.learning || self.learn_wanted
    }

    /// Whether a webhook fetch has something to do now.
    pub fn due(&self, now: Instant) -> bool {
        (!self.pending.is_empty() && passed(self.changes_not_before, now))
            || (self.confirm_events > 0 && passed(self.confirm_not_before, now))
            || self.learn_wanted
    }

    /// Hands a fetch its pushed work: a webhook fetch (`push_only`) what is due now;
    /// any other fetch the pending changes (it reads the list anyway).
    pub fn take(&mut self, now: Instant, push_only: bool) -> Pushed {
        if !push_only {
            let (changes, overflowed) = self.pending.take();
            return Pushed::changes_only(changes, overflowed);
        }
        let mut pushed = Pushed::default();
        if passed(self.changes_not_before, now) {
            (pushed.changes, pushed.overflowed) = self.pending.take();
        }
        if self.confirm_events > 0 && passed(self.confirm_not_before, now) {
            pushed.confirm_deauthorization = true;
            self.confirm_in_flight = std::mem::take(&mut self.confirm_events);
            self.confirm_not_before = Some(now + CONFIRM_EVERY);
        }
        if std::mem::take(&mut self.learn_wanted) {
            pushed.learn_athlete = true;
            self.learning = true;
            self.learn_not_before = Some(now + LEARN_EVERY);
        }
        pushed
    }

    /// A fetch that carried `taken` ended (`failed`: without a result) and its source
    /// reported `report`.
    pub fn settle(&mut self, taken: Pushed, report: PushReport, failed: bool, now: Instant) -> Settled {
        let PushReport { carried, missing, fruitless, share_spent_until, verdict, athlete } = report;
        if failed {
            self.pending.put_back(taken.changes.clone(), taken.overflowed);
        }
        self.pending.put_back(carried, false);
        for id in missing {
            self.missing.insert(id, now);
        }
        if !taken.changes.is_empty() || taken.overflowed {
            self.fruitless = if fruitless { self.fruitless.saturating_add(1) } else { 0 };
            self.changes_not_before = Some(now + window(self.fruitless));
        }
        if let Some(until) = share_spent_until {
            let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
            self.changes_not_before = self.changes_not_before.max(Some(now + wait));
        }
        let asked = std::mem::take(&mut self.confirm_in_flight);
        let verdict = match verdict {
            Some(verdict) => Some((verdict, asked)),
            // The fetch ended before Strava was asked: ask again later.
            None => {
                self.confirm_events += asked;
                None
            }
        };
        if taken.learn_athlete {
            self.learning = false;
        }
        Settled { verdict, athlete }
    }

    /// The fetch in flight died with the actor: its questions are asked again (its
    /// changes are lost; the next list read brings what they were about).
    pub fn restarted(&mut self) {
        self.confirm_events += std::mem::take(&mut self.confirm_in_flight);
        self.learning = false;
    }

    /// How many ids are pending and remembered missing.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        (self.pending.len(), self.missing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::sources::pushed::Change;
    use super::*;

    fn create(id: u64) -> ActivityChange {
        ActivityChange { id, change: Change::Create }
    }

    #[test]
    fn the_window_doubles_after_fruitless_reads_up_to_its_cap() {
        assert_eq!(window(0), COALESCE);
        assert_eq!(window(1), COALESCE * 2);
        assert_eq!(window(3), COALESCE * 8);
        assert_eq!(window(10), MAX_WINDOW);
        assert_eq!(window(u32::MAX), MAX_WINDOW);
    }

    #[test]
    fn a_fruitless_list_read_makes_the_next_wait_and_forgets_nothing_real() {
        let t0 = Instant::now();
        let mut push = CachePush::default();
        assert!(push.add(create(1), t0) && push.add(create(2), t0));
        assert!(push.due(t0));
        let taken = push.take(t0, true);
        assert_eq!(taken.changes.len(), 2);
        let report = PushReport { missing: vec![1, 2], fruitless: true, ..PushReport::default() };
        push.settle(taken, report, false, t0);
        assert!(!push.add(create(1), t0), "a missing id costs nothing");
        assert!(push.add(create(3), t0));
        assert!(!push.due(t0 + COALESCE), "the window doubled");
        assert!(push.due(t0 + COALESCE * 2));
        let taken = push.take(t0 + COALESCE * 2, true);
        let report = PushReport { fruitless: false, ..PushReport::default() };
        push.settle(taken, report, false, t0 + COALESCE * 2);
        assert!(push.add(create(4), t0 + COALESCE * 2));
        assert!(push.due(t0 + COALESCE * 3), "a fruitful read brings the window back");
        assert!(push.add(create(1), t0 + MISSING_FOR), "missing ids are forgotten in time");
    }

    #[test]
    fn a_failed_fetch_keeps_its_changes_and_carried_ones_come_back() {
        let t0 = Instant::now();
        let mut push = CachePush::default();
        push.add(create(1), t0);
        let taken = push.take(t0, false);
        push.add(create(2), t0);
        push.settle(taken, PushReport::default(), true, t0);
        assert_eq!(push.sizes().0, 2);
        let taken = push.take(t0, false);
        let report = PushReport { carried: vec![create(2)], ..PushReport::default() };
        push.settle(taken, report, false, t0);
        assert_eq!(push.take(t0, false).changes, [create(2)]);
    }

    #[test]
    fn confirmations_and_athlete_questions_are_rate_limited() {
        let t0 = Instant::now();
        let mut push = CachePush::default();
        push.want_confirmation();
        push.want_confirmation();
        assert!(push.want_athlete(t0));
        let taken = push.take(t0, true);
        assert!(taken.confirm_deauthorization && taken.learn_athlete);
        push.want_confirmation();
        assert!(push.want_athlete(t0), "asked already: the event waits for the answer");
        let report =
            PushReport { verdict: Some(Verdict::Refuted("served".into())), athlete: None, ..PushReport::default() };
        let settled = push.settle(taken, report, false, t0);
        assert_eq!(settled.verdict, Some((Verdict::Refuted("served".into()), 2)));
        assert!(!push.due(t0), "one check a minute");
        assert!(push.due(t0 + CONFIRM_EVERY));
        assert!(!push.want_athlete(t0 + CONFIRM_EVERY), "one question per five minutes");
        assert!(push.want_athlete(t0 + LEARN_EVERY));
    }

    #[test]
    fn the_missing_ids_are_bounded() {
        let t0 = Instant::now();
        let mut missing = Missing::default();
        for id in 0..(MAX_MISSING as u64 + 50) {
            missing.insert(id, t0);
        }
        assert_eq!(missing.len(), MAX_MISSING);
        assert!(!missing.contains(0, t0) && missing.contains(MAX_MISSING as u64 + 49, t0));
    }
}
