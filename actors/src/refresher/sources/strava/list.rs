//! The activity list, assembled into the cache's document: a full read of every page,
//! or an incremental read merged into the held document. A full read runs every
//! `full_refresh_every`, when asked for, and whenever there is nothing to build on.
//!
//! An incremental read asks for the activities that started after the newest one held
//! less [`INCREMENTAL_OVERLAP`] (an activity uploaded late, with an older start date,
//! is still seen), and never after now (one activity dated in the future would
//! otherwise hide every new one until the next full read).

use super::super::client::{status_error, Deadline};
use super::super::pushed::{PushReport, Verdict};
use super::super::{FetchRequest, Fetched, Rebase, SourceError};
use super::budget::Call;
use super::merge::{activities_of, activities_of_ids, keep_previous_detail, newest_start, rebase_body, upsert};
use super::words::quoted;
use super::StravaSource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::time::Duration;

/// A runaway pager is a bug upstream, not a reason to spend the whole budget.
const MAX_PAGES: u32 = 1000;

/// How far before the newest activity held an incremental read starts: a week, so
/// that a watch synced days late still shows at the next refresh, for the cost of
/// re-reading a week of activities (one page for almost everyone).
pub const INCREMENTAL_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// `after=` of an incremental read when the newest activity held started at `newest`
/// (none: nothing held to start from) and it is `now`.
pub(super) fn incremental_after(newest: Option<i64>, now: DateTime<Utc>) -> i64 {
    let now = now.timestamp();
    let overlap = i64::try_from(INCREMENTAL_OVERLAP.as_secs()).unwrap_or(i64::MAX);
    newest.unwrap_or(now).min(now).saturating_sub(overlap)
}

impl StravaSource {
    pub(super) async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let deadline = Deadline::after(request.timeout);
        let fetched_at = self.clock.now();
        let mut call = Call::new(deadline, request.push_only);
        let mut pushed_call = call.for_pushed();
        self.report(|r| *r = PushReport::default());
        if self.revoked().await || self.revoked_elsewhere().await {
            return Err(SourceError::Revoked);
        }
        let pushed = &request.pushed;
        if pushed.confirm_deauthorization {
            let verdict = self.confirm_deauthorization(&mut pushed_call).await;
            let confirmed = matches!(verdict, Verdict::Confirmed(_));
            self.report(|r| r.verdict = Some(verdict));
            if confirmed {
                return Err(SourceError::Revoked);
            }
        }
        if pushed.learn_athlete {
            self.learn_athlete_if_unknown(&mut pushed_call).await;
        }

        let previous = request.previous.as_deref().and_then(|d| activities_of(&d.body));
        if let (true, false, Some(mut held)) = (request.push_only, request.full, previous.clone()) {
            let before = held.clone();
            self.apply_pushed(&mut held, pushed, None, &mut call).await?;
            if held == before {
                return Ok(Fetched::not_modified());
            }
            return self.merged(fetched_at, before, held);
        }
        let after = match &previous {
            Some(held) if !request.full && !self.full_due(fetched_at).await => {
                newest_start(held).map(|newest| incremental_after(Some(newest), fetched_at))
            }
            _ => None,
        };
        // An incremental read is a merge into the held document: it can be done again on
        // a newer one. A full read replaces the list.
        let base = previous.clone().filter(|_| after.is_some());
        let (mut activities, listed) = match (after, previous) {
            (Some(after), Some(mut held)) => {
                let fresh = self.list(Some(after), &mut call).await?;
                tracing::debug!(cache = %self.cache, after, listed = fresh.len(), "incremental Strava refresh");
                let listed = activities_of_ids(&fresh);
                upsert(&mut held, fresh);
                (held, listed)
            }
            (_, previous) => {
                let mut fresh = self.list(None, &mut call).await?;
                keep_previous_detail(&mut fresh, previous.unwrap_or_default());
                let listed = activities_of_ids(&fresh);
                (fresh, listed)
            }
        };
        if !pushed.changes.is_empty() {
            self.apply_pushed(&mut activities, pushed, Some(&listed), &mut pushed_call).await?;
        }
        if self.settings.learn_athlete {
            self.learn_athlete_if_unknown(&mut call).await;
        }
        if request.rich {
            // Keep a tenth of the time (at most 2 s) for assembling the document.
            let reserve = (request.timeout / 10).min(Duration::from_secs(2));
            call.deadline = deadline.earlier_by(reserve);
            self.add_details(&mut activities, &mut call).await?;
        }
        if after.is_none() {
            self.update_sync(|s| s.last_full = Some(fetched_at)).await;
        }
        match base {
            Some(base) => self.merged(fetched_at, base, activities),
            None => self.document(fetched_at, activities),
        }
    }

    /// The document of a merge of `base` into `activities`, with the merge to do again
    /// should the held document have changed by the time it is saved.
    fn merged(
        &self,
        fetched_at: DateTime<Utc>,
        base: Vec<Value>,
        activities: Vec<Value>,
    ) -> Result<Fetched, SourceError> {
        let timestamp = fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let rebase = Rebase::new({
            let merged = activities.clone();
            move |current| rebase_body(&base, &merged, &timestamp, current)
        });
        Ok(self.document(fetched_at, activities)?.merged(rebase))
    }

    /// Whether `full_refresh_every` has passed since the last full read (or none is
    /// known, as after a restart without a recorded one).
    async fn full_due(&self, now: DateTime<Utc>) -> bool {
        let every = chrono::Duration::from_std(self.settings.full_refresh_every).unwrap_or(chrono::Duration::MAX);
        self.sync_state().await.last_full.is_none_or(|at| now - at >= every)
    }

    /// The usual error for a non-2xx answer, with Strava's own words in it.
    pub(super) fn refusal(&self, response: &super::super::client::Response, what: &str) -> SourceError {
        let said = quoted(&response.body, &self.secrets());
        match status_error(response, what, self.clock.now()) {
            SourceError::Permanent(m) => SourceError::Permanent(format!("{m}{said}")),
            SourceError::Transient(m) => SourceError::Transient(format!("{m}{said}")),
            other => other,
        }
    }

    /// The cache's document: `{"timestamp": FETCH_TIME, "activities": [...]}`.
    pub(super) fn document(&self, fetched_at: DateTime<Utc>, activities: Vec<Value>) -> Result<Fetched, SourceError> {
        let doc = serde_json::json!({
            "timestamp": fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "activities": activities,
        });
        let body = serde_json::to_vec(&doc).map_err(|e| SourceError::Permanent(e.to_string()))?;
        let now = self.clock.now();
        Ok(Fetched::new(body, self.with_budget(|b| b.snapshot(now))))
    }

    /// Every page of the list (`after`: only activities that started later). An
    /// incremental read stops at a short page; a full one reads until an empty page.
    pub(super) async fn list(&self, after: Option<i64>, call: &mut Call) -> Result<Vec<Value>, SourceError> {
        let per_page = self.settings.per_page;
        let after_query = after.map(|t| format!("after={t}&")).unwrap_or_default();
        let mut activities: Vec<Value> = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/api/v3/athlete/activities?{after_query}page={page}&per_page={per_page}",
                self.settings.base_url
            );
            let response = self.api_get(&url, call).await?;
            if !response.is_success() {
                return Err(self.refusal(&response, "Strava activities"));
            }
            let items: Vec<Value> = serde_json::from_slice(&response.body).map_err(|e| {
                SourceError::Permanent(format!("Strava activities page {page} is not a JSON array: {e}"))
            })?;
            if items.is_empty() {
                break;
            }
            if page == MAX_PAGES {
                return Err(SourceError::Permanent(format!("Strava returned more than {MAX_PAGES} pages")));
            }
            let short = (items.len() as u64) < u64::from(per_page);
            activities.extend(items);
            if after.is_some() && short {
                break;
            }
        }
        Ok(activities)
    }
}
