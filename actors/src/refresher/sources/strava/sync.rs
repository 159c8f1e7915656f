//! What the Strava source remembers between fetches besides its tokens: when it last
//! re-read the whole activity list, whose activities they are, and whether the athlete
//! deauthorized the app. Kept with the source's state (`data_dir/sources/`, Postgres
//! `source_state`) under its own key, so a restart neither repeats a full read it just
//! made nor skips one that is due, nor resumes a deauthorized cache.

use super::StravaSource;
use crate::domain::CacheName;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The athlete deauthorized the app, as Strava confirmed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deauthorization {
    /// SHA-256 (hex) of `client_id` and each refresh token known then: configuring
    /// one of them again does not lift the deauthorization, any other token does.
    pub tokens: Vec<String>,
    /// When it was recorded.
    pub at: Option<DateTime<Utc>>,
    /// What Strava answered.
    pub why: String,
}

impl Deauthorization {
    fn from_json(value: &Value) -> Self {
        let tokens = value
            .get("tokens")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
        Self {
            tokens: tokens.unwrap_or_default(),
            at: value.get("at").and_then(Value::as_str).and_then(parse_time),
            why: value.get("why").and_then(Value::as_str).unwrap_or_default().to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"tokens": self.tokens, "at": self.at.map(rfc3339), "why": self.why})
    }
}

/// The remembered sync state of one strava cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// When the whole list was last read.
    pub last_full: Option<DateTime<Utc>>,
    /// The athlete (`GET /api/v3/athlete`), asked once.
    pub athlete_id: Option<u64>,
    /// The athlete deauthorized the app: the fingerprint of the credentials that were
    /// configured then (new credentials lift it).
    pub deauthorized: Option<String>,
    /// The same, with every refresh token known then and what Strava said.
    pub deauthorization: Option<Deauthorization>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl SyncState {
    pub(super) fn from_json(value: &Value) -> Self {
        Self {
            last_full: value.get("last_full_refresh").and_then(Value::as_str).and_then(parse_time),
            athlete_id: value.get("athlete_id").and_then(Value::as_u64),
            deauthorized: value.get("deauthorized").and_then(Value::as_str).map(str::to_owned),
            deauthorization: value.get("deauthorization").filter(|v| v.is_object()).map(Deauthorization::from_json),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "last_full_refresh": self.last_full.map(rfc3339),
            "athlete_id": self.athlete_id,
            "deauthorized": self.deauthorized,
            "deauthorization": self.deauthorization.as_ref().map(Deauthorization::to_json),
        })
    }

    /// Whether a deauthorization is recorded at all (whatever credentials it was for).
    fn records_deauthorization(&self) -> bool {
        self.deauthorized.is_some() || self.deauthorization.is_some()
    }
}

impl StravaSource {
    /// The StateStore key of this cache's sync state (a cache name never holds `:`, so
    /// it cannot meet another cache's token key).
    pub fn sync_key(cache: &CacheName) -> String {
        format!("stravasync:{cache}")
    }

    /// The sync state, loaded from the store on first use.
    pub(super) async fn sync_state(&self) -> SyncState {
        let mut sync = self.sync.lock().await;
        if sync.is_none() {
            let loaded = self.state.load(&Self::sync_key(&self.cache)).await;
            *sync = Some(loaded.as_ref().map(SyncState::from_json).unwrap_or_default());
        }
        sync.clone().unwrap_or_default()
    }

    /// Changes the sync state and saves it; a failed save only costs a repeated full
    /// read or athlete call later, so it is logged, not returned.
    pub(super) async fn update_sync(&self, change: impl FnOnce(&mut SyncState)) {
        let current = self.sync_state().await;
        let mut next = current.clone();
        change(&mut next);
        if next == current {
            return;
        }
        // Never overwrite a deauthorization another instance recorded meanwhile.
        if !next.records_deauthorization() {
            if let Some(shared) = self.state.load_shared(&Self::sync_key(&self.cache)).await {
                let shared = SyncState::from_json(&shared);
                next.deauthorized = shared.deauthorized;
                next.deauthorization = shared.deauthorization;
            }
        }
        *self.sync.lock().await = Some(next.clone());
        if let Err(e) = self.state.save(&Self::sync_key(&self.cache), next.to_json()).await {
            tracing::warn!(cache = %self.cache, error = %e, "could not save the Strava sync state");
        }
    }
}
