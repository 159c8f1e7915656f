//! Strava's pushed changes (webhook events) applied to the held document, the athlete
//! id that routes them to this cache, and what a deauthorization makes it forget.

use super::super::client::{status_error, Deadline};
use super::super::pushed::{net, ActivityChange};
use super::super::SourceError;
use super::detail::MAX_DETAILS;
use super::merge::{activities_of_ids, newest_start, remove, upsert};
use super::sync::SyncState;
use super::StravaSource;
use serde_json::Value;
use std::time::Duration;

/// Removes the deleted activities from `held`; returns the created ones it does not
/// hold yet and the updated ones, both still to fetch.
fn drop_deleted(held: &mut Vec<Value>, pushed: &[ActivityChange]) -> (Vec<u64>, Vec<u64>) {
    let net = net(pushed);
    remove(held, &net.deleted);
    let held_ids = activities_of_ids(held);
    let created = net.created.into_iter().filter(|id| !held_ids.contains(id)).collect();
    (created, net.updated)
}

impl StravaSource {
    /// Applies `pushed` to `held` with as few calls as possible: a delete needs none,
    /// nor does a create of an activity already held; one create/update costs its
    /// detail call, several one incremental list call plus detail calls for those the
    /// list did not bring.
    pub(super) async fn apply_pushed_only(
        &self,
        held: &mut Vec<Value>,
        pushed: &[ActivityChange],
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<(), SourceError> {
        let (mut upserts, updated) = drop_deleted(held, pushed);
        upserts.extend(updated);
        if upserts.len() > 1 {
            if let Some(after) = newest_start(held) {
                let fresh = self.list(Some(after), deadline, retried).await?;
                let listed = activities_of_ids(&fresh);
                upsert(held, fresh);
                upserts.retain(|id| !listed.contains(id));
            }
        }
        self.fetch_each(held, &upserts, deadline, retried).await
    }

    /// After a list read: deletes go, and creates/updates the list did not bring
    /// (an update of an older activity) are fetched one by one.
    pub(super) async fn apply_pushed_after_list(
        &self,
        held: &mut Vec<Value>,
        listed: &[u64],
        pushed: &[ActivityChange],
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<(), SourceError> {
        let (mut upserts, updated) = drop_deleted(held, pushed);
        upserts.extend(updated.into_iter().filter(|id| !listed.contains(id)));
        self.fetch_each(held, &upserts, deadline, retried).await
    }

    /// `GET /api/v3/activities/{id}` for each of `ids` (at most [`MAX_DETAILS`]; the
    /// rest wait for the next list read): found ones go in, 404s go out.
    async fn fetch_each(
        &self,
        held: &mut Vec<Value>,
        ids: &[u64],
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<(), SourceError> {
        if ids.len() > MAX_DETAILS {
            tracing::warn!(cache = %self.cache, pushed = ids.len(), "too many pushed activities for one fetch; the next list read brings the rest");
        }
        for id in ids.iter().take(MAX_DETAILS) {
            let url = format!("{}/api/v3/activities/{id}", self.settings.base_url);
            let response = self.api_get(&url, deadline, retried).await?;
            match response.status {
                200..=299 => match serde_json::from_slice::<Value>(&response.body) {
                    Ok(detail @ Value::Object(_)) => upsert(held, vec![detail]),
                    _ => return Err(SourceError::Permanent(format!("Strava activity {id} is not a JSON object"))),
                },
                404 => {
                    remove(held, &[*id]);
                }
                _ => return Err(status_error(&response, "Strava activity detail", self.clock.now())),
            }
        }
        Ok(())
    }

    /// The athlete id if it is already known (no upstream call).
    pub async fn known_athlete_id(&self) -> Option<u64> {
        self.sync_state().await.athlete_id
    }

    /// The athlete whose activities these are: remembered, else asked once
    /// (`GET /api/v3/athlete`; the token grant does not say).
    pub async fn athlete_id(&self, timeout: Duration) -> Option<u64> {
        if let Some(id) = self.sync_state().await.athlete_id {
            return Some(id);
        }
        match self.learn_athlete(Deadline::after(timeout), &mut false).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(cache = %self.cache, error = %e, "cannot learn the Strava athlete id");
                None
            }
        }
    }

    pub(super) async fn learn_athlete(&self, deadline: Deadline, retried: &mut bool) -> Result<u64, SourceError> {
        let url = format!("{}/api/v3/athlete", self.settings.base_url);
        let response = self.api_get(&url, deadline, retried).await?;
        if !response.is_success() {
            return Err(status_error(&response, "Strava athlete", self.clock.now()));
        }
        let id = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| SourceError::Permanent("Strava's athlete has no numeric id".into()))?;
        self.update_sync(|s| s.athlete_id = Some(id)).await;
        Ok(id)
    }

    /// What identifies the configured credentials: a deauthorization holds until the
    /// configuration gives new ones.
    fn fingerprint(&self) -> String {
        let s = &self.settings;
        let file = s.refresh_token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let text = format!("{}\0{}\0{}", s.client_id, s.refresh_token, file);
        crate::domain::sha256(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether another instance recorded a deauthorization in the shared store (one
    /// query per fetch with Postgres); if so, it is remembered here too.
    pub(super) async fn revoked_elsewhere(&self) -> bool {
        let Some(shared) = self.state.load_shared(&Self::sync_key(&self.cache)).await else { return false };
        let shared = SyncState::from_json(&shared);
        if shared.deauthorized.as_deref() != Some(self.fingerprint().as_str()) {
            return false;
        }
        *self.sync.lock().await = Some(shared);
        true
    }

    /// Whether the athlete deauthorized the app with the credentials configured now.
    pub async fn revoked(&self) -> bool {
        self.sync_state().await.deauthorized.is_some_and(|f| f == self.fingerprint())
    }

    /// The athlete deauthorized the app: the stored refresh tokens go (file and
    /// Postgres, and `refresh_token_file`), and a marker that survives restarts keeps
    /// this source from fetching until the credentials change. The marker is written
    /// first, so a crash halfway never lets the schedule resume.
    ///
    /// # Errors
    /// When the marker or the token state could not be written or deleted.
    pub async fn forget(&self) -> Result<(), String> {
        let athlete_id = self.sync_state().await.athlete_id;
        let marker = SyncState { deauthorized: Some(self.fingerprint()), athlete_id, last_full: None };
        self.state.save(&Self::sync_key(&self.cache), marker.to_json()).await?;
        *self.sync.lock().await = Some(marker);
        *self.tokens.lock().await = super::tokens::Tokens::forgotten();
        self.state.remove(&Self::state_key(&self.cache)).await?;
        if let Some(path) = &self.settings.refresh_token_file {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(cache = %self.cache, path = %path.display(), error = %e, alert = true,
                    "cannot delete refresh_token_file after a deauthorization; delete it by hand"),
            }
        }
        Ok(())
    }
}
