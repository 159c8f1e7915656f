//! Changes an upstream pushed to the daemon (Strava's webhook events), as the refresher
//! keeps them and hands them to a source, and what the source reports back.
//!
//! An event is a hint, never an order: it only makes the source ask upstream, and what
//! upstream answers decides. The pending set is bounded ([`MAX_PENDING`] ids per cache)
//! and takes an event in O(1): a flood can neither exhaust memory nor stall the actor.

use std::collections::HashMap;

/// Most activity ids pending per cache; one more collapses the set into one
/// incremental list read (which brings every new activity whatever the events said).
pub const MAX_PENDING: usize = 10_000;

/// What happened to one activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created: list it unless it is held already.
    Create,
    /// Updated: fetch it again (held), or list it (not held).
    Update,
    /// Deleted: remove it, no upstream call.
    Delete,
}

impl Change {
    /// The net effect of `earlier` followed by `later`: a delete wins if it came last,
    /// an update outweighs a create, and duplicates (Strava retries) collapse.
    fn then(self, later: Change) -> Change {
        match (self, later) {
            (_, Change::Delete) => Change::Delete,
            (Change::Update, _) | (_, Change::Update) => Change::Update,
            (_, other) => other,
        }
    }
}

/// One pushed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityChange {
    /// The activity's id.
    pub id: u64,
    /// What happened.
    pub change: Change,
}

/// The changes pushed for one cache and not yet handed to a fetch: the net change per
/// activity, in order of first appearance.
#[derive(Debug, Default)]
pub struct PendingSet {
    /// Net change per id, with the sequence number of its first appearance.
    changes: HashMap<u64, (u64, Change)>,
    next: u64,
    /// More than [`MAX_PENDING`] ids arrived: the next fetch makes one incremental
    /// list read instead.
    overflowed: bool,
}

impl PendingSet {
    /// Takes `c` in, merging it with what is pending for the same id.
    pub fn insert(&mut self, c: ActivityChange) {
        if self.overflowed {
            return;
        }
        if let Some((_, seen)) = self.changes.get_mut(&c.id) {
            *seen = seen.then(c.change);
        } else if self.changes.len() >= MAX_PENDING {
            self.changes = HashMap::new();
            self.overflowed = true;
        } else {
            self.changes.insert(c.id, (self.next, c.change));
            self.next += 1;
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.overflowed
    }

    /// How many ids are pending.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Hands everything pending to a fetch.
    pub fn take(&mut self) -> (Vec<ActivityChange>, bool) {
        let mut changes: Vec<(u64, ActivityChange)> =
            self.changes.drain().map(|(id, (seq, change))| (seq, ActivityChange { id, change })).collect();
        changes.sort_unstable_by_key(|(seq, _)| *seq);
        let overflowed = std::mem::take(&mut self.overflowed);
        (changes.into_iter().map(|(_, c)| c).collect(), overflowed)
    }

    /// Puts back what a fetch did not apply, ahead of what arrived since.
    pub fn put_back(&mut self, earlier: Vec<ActivityChange>, overflowed: bool) {
        let (later, later_overflowed) = self.take();
        for c in earlier.into_iter().chain(later) {
            self.insert(c);
        }
        if overflowed || later_overflowed {
            self.changes = HashMap::new();
            self.overflowed = true;
        }
    }
}

/// What the refresher hands a fetch besides the request itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Net changes, in order of first appearance.
    pub changes: Vec<ActivityChange>,
    /// The pending set overflowed: one incremental list read stands in for it.
    pub overflowed: bool,
    /// A deauthorization event arrived: ask Strava whether it is true.
    pub confirm_deauthorization: bool,
    /// An event of an unknown athlete arrived while this cache's athlete is unknown:
    /// ask whose activities these are.
    pub learn_athlete: bool,
}

impl Pushed {
    /// Whether the fetch has nothing pushed to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.overflowed && !self.confirm_deauthorization && !self.learn_athlete
    }

    /// Only the activity changes (a fetch that is not the webhook's own).
    pub fn changes_only(changes: Vec<ActivityChange>, overflowed: bool) -> Self {
        Self { changes, overflowed, ..Self::default() }
    }
}

/// Strava's answer to "did this athlete deauthorize the app?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Strava refused the refresh token, or refused a freshly renewed access token.
    Confirmed(String),
    /// Strava still accepts the athlete's token: the event was forged.
    Refuted(String),
    /// Strava could not be asked (unreachable, rate-limited, the push share spent):
    /// nothing changes; a real deauthorization shows at the next refresh.
    Unknown(String),
}

/// What a fetch did with the pushed work it carried, for the refresher's bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Changes not applied (the per-fetch detail cap, the push share, the time): the
    /// next fetch carries them.
    pub carried: Vec<ActivityChange>,
    /// Ids Strava does not have (not in the list read for them, or answered 404):
    /// events about them cost nothing for a while.
    pub missing: Vec<u64>,
    /// A list read for pushed ids found none of them (forged, most likely): the next
    /// one waits longer.
    pub fruitless: bool,
    /// The share of the rate budget reserved for pushed work is spent until then.
    pub share_spent_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The verdict on a deauthorization, when one was asked.
    pub verdict: Option<Verdict>,
    /// The athlete id, when this fetch learnt it.
    pub athlete: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, change: Change) -> ActivityChange {
        ActivityChange { id, change }
    }

    #[test]
    fn deletes_win_when_last_updates_outweigh_creates_and_duplicates_collapse() {
        let mut set = PendingSet::default();
        for change in [
            c(1, Change::Create),
            c(1, Change::Create),
            c(2, Change::Create),
            c(2, Change::Delete),
            c(3, Change::Delete),
            c(3, Change::Create),
            c(4, Change::Create),
            c(4, Change::Update),
            c(4, Change::Create),
        ] {
            set.insert(change);
        }
        let (changes, overflowed) = set.take();
        assert!(!overflowed);
        assert_eq!(changes, [c(1, Change::Create), c(2, Change::Delete), c(3, Change::Create), c(4, Change::Update)]);
        assert!(set.is_empty());
    }

    #[test]
    fn put_back_keeps_the_earlier_changes_first_and_merges_later_ones() {
        let mut set = PendingSet::default();
        set.insert(c(9, Change::Create));
        set.insert(c(1, Change::Delete));
        set.put_back(vec![c(1, Change::Create), c(2, Change::Update)], false);
        let (changes, _) = set.take();
        assert_eq!(changes, [c(1, Change::Delete), c(2, Change::Update), c(9, Change::Create)]);
    }

    #[test]
    fn the_set_is_bounded_and_collapses_into_one_list_read() {
        let mut set = PendingSet::default();
        for id in 0..MAX_PENDING as u64 {
            set.insert(c(id, Change::Create));
        }
        assert_eq!(set.len(), MAX_PENDING);
        set.insert(c(7, Change::Update));
        assert_eq!(set.len(), MAX_PENDING, "a known id merges");
        set.insert(c(u64::MAX, Change::Create));
        assert_eq!(set.len(), 0);
        set.insert(c(1, Change::Create));
        assert!(!set.is_empty());
        assert_eq!(set.take(), (Vec::new(), true));
        assert!(set.is_empty());
    }

    #[test]
    fn a_million_inserts_take_linear_time() {
        // 300,000 queued events used to stall the actor for minutes (a list scanned per
        // insert); a million distinct and repeated ids must take well under a second.
        let started = std::time::Instant::now();
        let mut set = PendingSet::default();
        for i in 0..1_000_000u64 {
            set.insert(c(i % 9_000, if i % 3 == 0 { Change::Update } else { Change::Create }));
        }
        assert_eq!(set.len(), 9_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
