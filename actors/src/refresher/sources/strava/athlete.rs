//! Whose activities these are: the athlete id that routes webhook events to this
//! cache, asked once (`GET /api/v3/athlete`; the token grant does not say) and kept
//! with the source's sync state.

use super::super::SourceError;
use super::budget::Call;
use super::StravaSource;
use serde_json::Value;

impl StravaSource {
    /// The athlete id if it is already known (no upstream call).
    pub async fn known_athlete_id(&self) -> Option<u64> {
        self.sync_state().await.athlete_id
    }

    /// Asks Strava for the athlete id and remembers it.
    pub(super) async fn learn_athlete(&self, call: &mut Call) -> Result<u64, SourceError> {
        let url = format!("{}/api/v3/athlete", self.settings.base_url);
        let response = self.api_get(&url, call).await?;
        if !response.is_success() {
            return Err(self.refusal(&response, "Strava athlete"));
        }
        let id = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| SourceError::Permanent("Strava's athlete has no numeric id".into()))?;
        self.update_sync(|s| s.athlete_id = Some(id)).await;
        self.report(|r| r.athlete = Some(id));
        Ok(id)
    }

    /// Learns the athlete id if it is not known yet; a failure is logged, not returned
    /// (events wait for the id; the next try is the refresher's to schedule).
    pub(super) async fn learn_athlete_if_unknown(&self, call: &mut Call) {
        if self.sync_state().await.athlete_id.is_some() {
            return;
        }
        if let Err(e) = self.learn_athlete(call).await {
            tracing::warn!(cache = %self.cache, error = %e, "cannot learn the Strava athlete id; webhook events wait for it");
        }
    }
}
