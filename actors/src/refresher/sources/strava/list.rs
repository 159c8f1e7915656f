//! The activity list, assembled into the cache's document: a full read of every page,
//! or an incremental read (`after=` the newest activity held) merged into the held
//! document. A full read runs every `full_refresh_every`, when asked for, and whenever
//! there is nothing to build on.

use super::super::client::{status_error, Deadline};
use super::super::{FetchRequest, Fetched, SourceError};
use super::merge::{activities_of, activities_of_ids, keep_previous_detail, newest_start, upsert};
use super::StravaSource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::time::Duration;

/// A runaway pager is a bug upstream, not a reason to spend the whole budget.
const MAX_PAGES: u32 = 1000;

impl StravaSource {
    pub(super) async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let deadline = Deadline::after(request.timeout);
        let fetched_at = self.clock.now();
        let mut retried = false;
        if self.revoked().await || self.revoked_elsewhere().await {
            return Err(SourceError::Revoked);
        }

        let previous = request.previous.as_deref().and_then(|d| activities_of(&d.body));
        if let (true, false, Some(mut held)) = (request.push_only, request.full, previous.clone()) {
            self.apply_pushed_only(&mut held, &request.pushed, deadline, &mut retried).await?;
            return self.document(fetched_at, held);
        }
        let after = match &previous {
            Some(held) if !request.full && !self.full_due(fetched_at).await => newest_start(held),
            _ => None,
        };
        let (mut activities, listed) = match (after, previous) {
            (Some(after), Some(mut held)) => {
                let fresh = self.list(Some(after), deadline, &mut retried).await?;
                tracing::debug!(cache = %self.cache, after, new = fresh.len(), "incremental Strava refresh");
                let listed = activities_of_ids(&fresh);
                upsert(&mut held, fresh);
                (held, listed)
            }
            (_, previous) => {
                let mut fresh = self.list(None, deadline, &mut retried).await?;
                keep_previous_detail(&mut fresh, previous.unwrap_or_default());
                let listed = activities_of_ids(&fresh);
                (fresh, listed)
            }
        };
        if !request.pushed.is_empty() {
            self.apply_pushed_after_list(&mut activities, &listed, &request.pushed, deadline, &mut retried).await?;
        }
        if self.settings.learn_athlete && self.sync_state().await.athlete_id.is_none() {
            if let Err(e) = self.learn_athlete(deadline, &mut retried).await {
                tracing::warn!(cache = %self.cache, error = %e, "cannot learn the Strava athlete id; webhook events wait for it");
            }
        }
        if request.rich {
            // Keep a tenth of the time (at most 2 s) for assembling the document.
            let reserve = (request.timeout / 10).min(Duration::from_secs(2));
            self.add_details(&mut activities, deadline.earlier_by(reserve), &mut retried).await?;
        }
        if after.is_none() {
            self.update_sync(|s| s.last_full = Some(fetched_at)).await;
        }
        self.document(fetched_at, activities)
    }

    /// Whether `full_refresh_every` has passed since the last full read (or none is
    /// known, as after a restart without a recorded one).
    async fn full_due(&self, now: DateTime<Utc>) -> bool {
        let every = chrono::Duration::from_std(self.settings.full_refresh_every).unwrap_or(chrono::Duration::MAX);
        self.sync_state().await.last_full.is_none_or(|at| now - at >= every)
    }

    /// The cache's document: `{"timestamp": FETCH_TIME, "activities": [...]}`.
    pub(super) fn document(&self, fetched_at: DateTime<Utc>, activities: Vec<Value>) -> Result<Fetched, SourceError> {
        let doc = serde_json::json!({
            "timestamp": fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "activities": activities,
        });
        let body = serde_json::to_vec(&doc).map_err(|e| SourceError::Permanent(e.to_string()))?;
        Ok(Fetched::new(body, self.budget().snapshot(self.clock.now())))
    }

    /// Every page of the list (`after`: only activities that started later). An
    /// incremental read stops at a short page; a full one reads until an empty page.
    pub(super) async fn list(
        &self,
        after: Option<i64>,
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<Vec<Value>, SourceError> {
        let per_page = self.settings.per_page;
        let after_query = after.map(|t| format!("after={t}&")).unwrap_or_default();
        let mut activities: Vec<Value> = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/api/v3/athlete/activities?{after_query}page={page}&per_page={per_page}",
                self.settings.base_url
            );
            let response = self.api_get(&url, deadline, retried).await?;
            if !response.is_success() {
                return Err(status_error(&response, "Strava activities", self.clock.now()));
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
