//! Per-activity detail (`GET /api/v3/activities/{id}`) merged on rich refreshes.

use super::super::SourceError;
use super::budget::Call;
use super::merge::start_date;
use super::StravaSource;
use serde_json::Value;

/// Most detail calls in one rich refresh, and for pushed updates in one fetch.
pub const MAX_DETAILS: usize = 50;

impl StravaSource {
    /// Merges `GET /api/v3/activities/{id}` into the newest activities while the budget
    /// and the time allow; a failure here keeps what was merged so far.
    pub(super) async fn add_details(&self, activities: &mut [Value], call: &mut Call) -> Result<(), SourceError> {
        let mut order: Vec<usize> = (0..activities.len()).collect();
        // Newest first; the list is already in that order, the sort only makes sure.
        order.sort_by(|&a, &b| start_date(&activities[b]).cmp(start_date(&activities[a])));
        let mut merged = 0;
        for index in order.into_iter().take(MAX_DETAILS) {
            let now = self.clock.now();
            if self.with_budget(|b| b.spare(now)).is_some_and(|spare| spare == 0) || call.deadline.remaining().is_none()
            {
                break;
            }
            let Some(id) = activities[index].get("id").filter(|id| id.is_u64() || id.is_i64()).cloned() else {
                continue;
            };
            let url = format!("{}/api/v3/activities/{id}", self.settings.base_url);
            let response = match self.api_get(&url, call).await {
                Ok(response) => response,
                Err(e @ SourceError::Permanent(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(cache = %self.cache, error = %e, merged, "Strava detail refresh stopped early");
                    break;
                }
            };
            match response.status {
                200..=299 => {}
                404 => continue, // deleted since the list was read
                _ => {
                    let e = self.refusal(&response, "Strava activity detail");
                    tracing::warn!(cache = %self.cache, error = %e, merged, "Strava detail refresh stopped early");
                    break;
                }
            }
            let Ok(Value::Object(detail)) = serde_json::from_slice::<Value>(&response.body) else {
                return Err(SourceError::Permanent(format!("Strava activity {id} detail is not a JSON object")));
            };
            if let Value::Object(activity) = &mut activities[index] {
                activity.extend(detail);
                merged += 1;
            }
        }
        Ok(())
    }
}
