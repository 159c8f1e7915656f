//! The paginated activity list, assembled into the cache's document.

use super::super::client::{status_error, Deadline};
use super::super::{FetchRequest, Fetched, SourceError};
use super::StravaSource;
use chrono::SecondsFormat;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// A runaway pager is a bug upstream, not a reason to spend the whole budget.
const MAX_PAGES: u32 = 1000;

impl StravaSource {
    pub(super) async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let deadline = Deadline::after(request.timeout);
        let fetched_at = self.clock.now();
        let mut retried = false;

        let mut activities: Vec<Value> = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/api/v3/athlete/activities?page={page}&per_page={}",
                self.settings.base_url, self.settings.per_page
            );
            let response = self.api_get(&url, deadline, &mut retried).await?;
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
            activities.extend(items);
        }

        keep_previous_detail(&mut activities, request.previous.as_deref().map(|d| &d.body[..]));
        if request.rich {
            // Keep a tenth of the time (at most 2 s) for assembling the document.
            let reserve = (request.timeout / 10).min(Duration::from_secs(2));
            self.add_details(&mut activities, deadline.earlier_by(reserve), &mut retried).await?;
        }

        let doc = serde_json::json!({
            "timestamp": fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "activities": activities,
        });
        let body = serde_json::to_vec(&doc).map_err(|e| SourceError::Permanent(e.to_string()))?;
        Ok(Fetched { body, rate_limits: self.budget().snapshot(self.clock.now()) })
    }
}

/// Activities that are still listed keep the detail fields an earlier rich refresh
/// merged into them; the new summary wins where both have a field.
fn keep_previous_detail(activities: &mut [Value], previous: Option<&[u8]>) {
    let Some(Ok(Value::Object(mut doc))) = previous.map(serde_json::from_slice::<Value>) else { return };
    let Some(Value::Array(old)) = doc.remove("activities") else { return };
    let mut by_id: HashMap<String, Map<String, Value>> = HashMap::new();
    for item in old {
        if let Value::Object(item) = item {
            if let Some(id) = item.get("id").map(Value::to_string) {
                by_id.insert(id, item);
            }
        }
    }
    for activity in activities.iter_mut() {
        let Value::Object(summary) = activity else { continue };
        let Some(mut merged) = summary.get("id").and_then(|id| by_id.remove(&id.to_string())) else { continue };
        merged.extend(std::mem::take(summary));
        *summary = merged;
    }
}
