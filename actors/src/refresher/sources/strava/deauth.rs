//! A deauthorization: confirmed with Strava before anything is destroyed, then
//! recorded (against the credentials configured, so new ones lift it) and the stored
//! tokens forgotten. A webhook event only ever asks; Strava's answer decides.

use super::super::pushed::Verdict;
use super::super::SourceError;
use super::budget::{Answer, Call};
use super::sync::{Deauthorization, SyncState};
use super::words::quoted;
use super::StravaSource;
use std::sync::PoisonError;

impl StravaSource {
    /// What identifies the configured credentials (markers written before token
    /// digests were kept).
    fn fingerprint(&self) -> String {
        let s = &self.settings;
        let file = s.refresh_token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        hex(format!("{}\0{}\0{}", s.client_id, s.refresh_token, file).as_bytes())
    }

    /// The digest a marker keeps of one refresh token of this application.
    fn token_digest(&self, token: &str) -> String {
        hex(format!("{}\0{token}", self.settings.client_id).as_bytes())
    }

    /// Whether `sync` records a deauthorization of the credentials configured now.
    fn revokes_current(&self, sync: &SyncState) -> bool {
        let by_digest = sync
            .deauthorization
            .as_ref()
            .is_some_and(|d| d.tokens.contains(&self.token_digest(&self.settings.refresh_token)));
        by_digest || sync.deauthorized.as_deref() == Some(self.fingerprint().as_str())
    }

    /// Whether another instance recorded a deauthorization in the shared store (one
    /// query per fetch with Postgres); if so, it is remembered here too.
    pub(super) async fn revoked_elsewhere(&self) -> bool {
        let Some(shared) = self.state.load_shared(&Self::sync_key(&self.cache)).await else { return false };
        let shared = SyncState::from_json(&shared);
        if !self.revokes_current(&shared) {
            return false;
        }
        *self.sync.lock().await = Some(shared);
        true
    }

    /// Whether the athlete deauthorized the app with the credentials configured now.
    pub async fn revoked(&self) -> bool {
        self.revokes_current(&self.sync_state().await)
    }

    /// The recorded deauthorization of the credentials configured now, if any.
    pub async fn deauthorization(&self) -> Option<Deauthorization> {
        let sync = self.sync_state().await;
        if !self.revokes_current(&sync) {
            return None;
        }
        Some(sync.deauthorization.unwrap_or_else(|| Deauthorization {
            why: "recorded before this version kept Strava's answer".into(),
            ..Deauthorization::default()
        }))
    }

    /// Asks Strava whether the athlete withdrew the app's authorization: a refused
    /// refresh token, or `GET /api/v3/athlete` refusing an access token just renewed,
    /// confirms it; an athlete served as usual refutes it; anything else (Strava
    /// unreachable, rate-limited, the pushed share spent) leaves it unknown.
    pub(super) async fn confirm_deauthorization(&self, call: &mut Call) -> Verdict {
        let url = format!("{}/api/v3/athlete", self.settings.base_url);
        if let Err(until) = self.pushed_share_left() {
            return Verdict::Unknown(format!("the rate budget's share for webhook events is spent until {until}"));
        }
        for renewed in [false, true] {
            let token = match self.access_token(call.deadline).await {
                Ok(token) => token,
                Err(SourceError::Revoked) => return Verdict::Confirmed(self.deauthorized_why()),
                Err(e) => return Verdict::Unknown(format!("cannot ask Strava: {e}")),
            };
            match self.get_with(&url, &token, call).await {
                Ok(Answer::Response(r)) if r.is_success() => {
                    return Verdict::Refuted("Strava still serves the athlete with the app's token".into())
                }
                Ok(Answer::Response(r)) => {
                    let said = quoted(&r.body, &self.secrets());
                    return Verdict::Unknown(format!("Strava's athlete answered HTTP {}{said}", r.status));
                }
                Ok(Answer::Unauthorized) if !renewed => self.forget_access_token(&token).await,
                Ok(Answer::Unauthorized) => {
                    return Verdict::Confirmed(
                        "Strava refused a freshly renewed access token for GET /api/v3/athlete (HTTP 401)".into(),
                    )
                }
                Err(e) => return Verdict::Unknown(format!("cannot ask Strava: {e}")),
            }
        }
        Verdict::Unknown("no answer".into())
    }

    /// Why the last refusal meant a deauthorization (Strava's words).
    fn deauthorized_why(&self) -> String {
        self.deauthorized_why
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "Strava refused the refresh token".into())
    }

    /// The athlete deauthorized the app (Strava confirmed it, or another instance
    /// recorded it): a marker that survives restarts keeps this source from fetching
    /// until the credentials change, and the stored refresh tokens go (the local file
    /// and Postgres). A file the operator wrote (`refresh_token_file`) is never deleted:
    /// the marker covers its token. The marker is written first, so a crash halfway
    /// never lets the schedule resume.
    ///
    /// # Errors
    /// When the marker or the token state could not be written or deleted.
    pub async fn forget(&self) -> Result<Deauthorization, String> {
        let current = self.sync_state().await;
        let recorded = current.deauthorization.clone().filter(|_| self.revokes_current(&current));
        let deauthorization = match recorded {
            Some(d) => d,
            None => {
                let mut known = self.tokens.lock().await.known();
                known.push(self.settings.refresh_token.clone());
                if let Some(saved) = self.state.load(&Self::state_key(&self.cache)).await {
                    known.extend(saved.get("refresh_token").and_then(|t| t.as_str()).map(str::to_owned));
                }
                let mut tokens: Vec<String> = known.iter().map(|t| self.token_digest(t)).collect();
                tokens.sort();
                tokens.dedup();
                Deauthorization { tokens, at: Some(self.clock.now()), why: self.deauthorized_why() }
            }
        };
        let marker = SyncState {
            deauthorized: Some(self.fingerprint()),
            deauthorization: Some(deauthorization.clone()),
            ..current
        };
        self.state.save(&Self::sync_key(&self.cache), marker.to_json()).await?;
        *self.sync.lock().await = Some(marker);
        *self.tokens.lock().await = super::tokens::Tokens::forgotten();
        self.state.remove(&Self::state_key(&self.cache)).await?;
        Ok(deauthorization)
    }
}

fn hex(bytes: &[u8]) -> String {
    crate::domain::sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
