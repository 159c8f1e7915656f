//! Strava's pushed changes (webhook events) applied to the held document, Strava's
//! word decides: an event only says which activity to ask about.
//!
//! - A delete removes the activity, with no upstream call.
//! - An update of an activity held fetches its detail (`GET /api/v3/activities/{id}`).
//! - A create, or an update of an activity not held, is only believed once a list
//!   read shows it: one incremental list read for all of them (see `list.rs` for its
//!   overlap). An id the list does not bring, or that Strava answers 404 for, is
//!   reported missing (the refresher ignores events about it for a while).
//! - Pushed calls spend only their share of the budget; what does not fit (that
//!   share, [`MAX_DETAILS`] detail calls per fetch) is carried over to the next fetch.

use super::super::pushed::{ActivityChange, Change, Pushed};
use super::super::SourceError;
use super::budget::Call;
use super::detail::MAX_DETAILS;
use super::list::incremental_after;
use super::merge::{activities_of_ids, newest_start, remove, upsert};
use super::StravaSource;
use serde_json::Value;
use std::collections::HashSet;

/// Keep this much of the fetch's time for assembling and saving the document.
const RESERVE: std::time::Duration = std::time::Duration::from_secs(2);

impl StravaSource {
    /// Applies `pushed` to `held`. `listed`: the ids a list read of this fetch brought
    /// (an ordinary fetch); `None` (the webhook's own fetch): a list is read here if a
    /// pushed id needs one.
    pub(super) async fn apply_pushed(
        &self,
        held: &mut Vec<Value>,
        pushed: &Pushed,
        listed: Option<&[u64]>,
        call: &mut Call,
    ) -> Result<(), SourceError> {
        let held_ids: HashSet<u64> = activities_of_ids(held).into_iter().collect();
        let (mut deleted, mut details, mut unvouched) = (Vec::new(), Vec::new(), Vec::new());
        for c in &pushed.changes {
            match c.change {
                Change::Delete => deleted.push(c.id),
                Change::Create if held_ids.contains(&c.id) => {}
                Change::Update if held_ids.contains(&c.id) => details.push(c.id),
                _ => unvouched.push(*c),
            }
        }
        remove(held, &deleted);
        let listed: HashSet<u64> = match listed {
            Some(listed) => listed.iter().copied().collect(),
            None if !unvouched.is_empty() || pushed.overflowed => {
                if let Err(until) = self.pushed_share_left() {
                    let carried = unvouched.iter().copied().chain(details.iter().map(|id| update(*id)));
                    let carried: Vec<ActivityChange> = carried.collect();
                    self.report(|r| {
                        r.carried = carried;
                        r.share_spent_until = Some(until);
                    });
                    return Ok(());
                }
                let after = incremental_after(newest_start(held), self.clock.now());
                let fresh = self.list(Some(after), call).await?;
                let ids = activities_of_ids(&fresh);
                upsert(held, fresh);
                ids.into_iter().collect()
            }
            None => HashSet::new(),
        };
        details.retain(|id| !listed.contains(id));
        let missing: Vec<u64> = unvouched.iter().map(|c| c.id).filter(|id| !listed.contains(id)).collect();
        let fruitless = !unvouched.is_empty() && missing.len() == unvouched.len();
        self.report(|r| {
            r.missing = missing;
            r.fruitless = fruitless;
        });
        self.fetch_details(held, &details, call).await
    }

    /// `GET /api/v3/activities/{id}` for each of `ids` while the per-fetch cap, the
    /// pushed share and the time allow (the rest is carried over): found ones go in,
    /// 404s go out and are reported missing.
    async fn fetch_details(&self, held: &mut Vec<Value>, ids: &[u64], call: &mut Call) -> Result<(), SourceError> {
        for (done, id) in ids.iter().enumerate() {
            let stop = if done >= MAX_DETAILS {
                Some(None)
            } else if let Err(until) = self.pushed_share_left() {
                Some(Some(until))
            } else if call.deadline.remaining().is_none_or(|left| left < RESERVE) {
                Some(None)
            } else {
                None
            };
            if let Some(until) = stop {
                let carried: Vec<ActivityChange> = ids[done..].iter().map(|id| update(*id)).collect();
                tracing::debug!(cache = %self.cache, carried = carried.len(), "pushed activities carried over to the next fetch");
                self.report(|r| {
                    r.carried.extend(carried);
                    r.share_spent_until = until;
                });
                return Ok(());
            }
            let url = format!("{}/api/v3/activities/{id}", self.settings.base_url);
            let response = self.api_get(&url, call).await?;
            match response.status {
                200..=299 => match serde_json::from_slice::<Value>(&response.body) {
                    Ok(detail @ Value::Object(_)) => upsert(held, vec![detail]),
                    _ => return Err(SourceError::Permanent(format!("Strava activity {id} is not a JSON object"))),
                },
                404 => {
                    remove(held, &[*id]);
                    self.report(|r| r.missing.push(*id));
                }
                _ => return Err(self.refusal(&response, "Strava activity detail")),
            }
        }
        Ok(())
    }
}

fn update(id: u64) -> ActivityChange {
    ActivityChange { id, change: Change::Update }
}
