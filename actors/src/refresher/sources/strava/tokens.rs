//! Strava's OAuth refresh-token flow: a rotated refresh token is made durable before
//! the access token that came with it is used.
//!
//! A refusal keeps Strava's words and says whose it is: the application's client
//! credentials (an operator's fix) or the refresh token. A refresh token refused
//! when no other candidate is left (the saved one, the file, the configured one, and
//! the newest one another instance saved) is Strava confirming a deauthorization.

use super::super::client::{status_error, Deadline, Request};
use super::super::ratelimit;
use super::super::SourceError;
use super::words::{quoted, token_refusal, TokenRefusal};
use super::StravaSource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Access tokens are renewed this long before they expire.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// When every refresh token known is refused, look for a newer one once more after
/// this long before concluding a deauthorization: another instance's rotation is saved
/// a moment after Strava answered it.
const RECHECK_AFTER_REFUSAL: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Default)]
pub(super) struct Tokens {
    loaded: bool,
    /// The refresh token to send next.
    refresh: String,
    /// Older candidates to fall back on if `refresh` is refused (e.g. the configured
    /// token was replaced by re-authorising the app after one was saved).
    fallbacks: Vec<String>,
    /// The refresh token known to be durable (saved, or configured).
    durable: Option<String>,
    /// The access token and when to renew it.
    access: Option<(String, DateTime<Utc>)>,
    /// Refresh tokens Strava refused since they were loaded.
    refused: Vec<String>,
}

/// Why a renewal failed.
enum Renewal {
    /// Strava refused the refresh token (the message keeps its words).
    TokenRefused(String),
    /// Anything else, as the fetch reports it.
    Failed(SourceError),
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
    expires_in: Option<i64>,
}

impl Tokens {
    /// After a deauthorization: nothing to send, and nothing to load again.
    pub(super) fn forgotten() -> Self {
        Self { loaded: true, ..Self::default() }
    }

    /// Every refresh token known now (the deauthorization marker keeps their digests,
    /// so that none of them lifts it after a restart).
    pub(super) fn known(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let candidates = [Some(&self.refresh), self.durable.as_ref()].into_iter().flatten();
        for t in candidates.chain(&self.fallbacks).chain(&self.refused) {
            if !t.is_empty() && !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }
}

impl StravaSource {
    pub(super) async fn forget_access_token(&self, token: &str) {
        let mut tokens = self.tokens.lock().await;
        if tokens.access.as_ref().is_some_and(|(t, _)| t == token) {
            tokens.access = None;
        }
    }

    /// A valid access token, renewing it (and saving a rotated refresh token) if needed.
    pub(super) async fn access_token(&self, deadline: Deadline) -> Result<String, SourceError> {
        let mut tokens = self.tokens.lock().await;
        if !tokens.loaded {
            self.load_tokens(&mut tokens).await;
        }
        if let Some((token, renew_after)) = &tokens.access {
            if *renew_after > self.clock.now() {
                return Ok(token.clone());
            }
        }
        tokens.access = None;
        let mut rechecked = false;
        loop {
            let refused = match self.renew(&mut tokens, deadline).await {
                Ok(access) => return Ok(access),
                Err(Renewal::Failed(e)) => return Err(e),
                Err(Renewal::TokenRefused(why)) => why,
            };
            let tried = std::mem::take(&mut tokens.refresh);
            tokens.refused.push(tried);
            if !tokens.fallbacks.is_empty() {
                tracing::warn!(cache = %self.cache, error = %refused, "Strava refused the refresh token; trying an older one");
                tokens.refresh = tokens.fallbacks.remove(0);
                continue;
            }
            // Another instance may have rotated the token since this one loaded it (its
            // save may land a moment after Strava answered it), or the operator may have
            // just replaced the file: look now, and once more a little later.
            let mut newer = self.newer_refresh_token(&tokens.refused).await;
            if newer.is_none() && !std::mem::replace(&mut rechecked, true) {
                let gap = deadline.remaining().map_or(Duration::ZERO, |left| left.min(RECHECK_AFTER_REFUSAL));
                tokio::time::sleep(gap).await;
                newer = self.newer_refresh_token(&tokens.refused).await;
            }
            if let Some(newer) = newer {
                tracing::info!(cache = %self.cache, "trying a newer refresh token (another instance's, or the file's)");
                tokens.refresh = newer;
                continue;
            }
            *self.deauthorized_why.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refused);
            return Err(SourceError::Revoked);
        }
    }

    /// A refresh token not refused yet: the one in the shared store (another
    /// instance's rotation) or in `refresh_token_file`, if any.
    async fn newer_refresh_token(&self, refused: &[String]) -> Option<String> {
        let shared = self.state.load_shared(&Self::state_key(&self.cache)).await.and_then(|state| {
            state.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned)
        });
        let from_file = match &self.settings.refresh_token_file {
            Some(path) => tokio::fs::read_to_string(path).await.ok().map(|s| s.trim().to_owned()),
            None => None,
        };
        [shared, from_file].into_iter().flatten().find(|t| !t.is_empty() && !refused.contains(t))
    }

    /// Prefers the saved (rotated) token, then `refresh_token_file`, then the configured one.
    pub(super) async fn load_tokens(&self, tokens: &mut Tokens) {
        let saved = self
            .state
            .load(&Self::state_key(&self.cache))
            .await
            .and_then(|v| v.get("refresh_token").and_then(Value::as_str).map(str::to_owned));
        let from_file = match &self.settings.refresh_token_file {
            Some(path) => tokio::fs::read_to_string(path).await.ok().map(|s| s.trim().to_owned()),
            None => None,
        };
        let mut candidates: Vec<String> = Vec::new();
        for token in [saved, from_file, Some(self.settings.refresh_token.clone())].into_iter().flatten() {
            if !token.is_empty() && !candidates.contains(&token) {
                candidates.push(token);
            }
        }
        let mut candidates = candidates.into_iter();
        tokens.refresh = candidates.next().unwrap_or_default();
        tokens.durable = Some(tokens.refresh.clone());
        tokens.fallbacks = candidates.collect();
        tokens.loaded = true;
    }

    async fn renew(&self, tokens: &mut Tokens, deadline: Deadline) -> Result<String, Renewal> {
        let form = vec![
            ("client_id".to_owned(), self.settings.client_id.clone()),
            ("client_secret".to_owned(), self.settings.client_secret.clone()),
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), tokens.refresh.clone()),
        ];
        let url = format!("{}/oauth/token", self.settings.base_url);
        let request = Request::post_form(url, form).header("Accept", "application/json");
        let response = self.client.send(request, deadline).await.map_err(Renewal::Failed)?;
        let now = self.clock.now();
        let status = response.status;
        let mut secrets = self.secrets();
        secrets.push(tokens.refresh.as_str());
        let said = quoted(&response.body, &secrets);
        match status {
            200..=299 => {}
            400 | 401 | 403 => {
                return Err(match token_refusal(status, &response.body) {
                    TokenRefusal::RefreshToken => {
                        Renewal::TokenRefused(format!("Strava refused the refresh token (HTTP {status}){said}"))
                    }
                    TokenRefusal::Client => Renewal::Failed(SourceError::Permanent(format!(
                        "Strava refused the application's client credentials (HTTP {status}){said}: \
                         check client_id and client_secret (client_secret_file) and reload"
                    ))),
                })
            }
            429 => {
                let readings = ratelimit::parse(&response.headers);
                let until = self.with_budget(|b| b.rejected(&readings, now));
                return Err(Renewal::Failed(SourceError::RateLimited { until }));
            }
            _ => {
                return Err(Renewal::Failed(match status_error(&response, "Strava's token endpoint", now) {
                    SourceError::Permanent(m) => SourceError::Permanent(format!("{m}{said}")),
                    SourceError::Transient(m) => SourceError::Transient(format!("{m}{said}")),
                    other => other,
                }))
            }
        }
        // Never echo this body: it holds tokens.
        let answer: TokenResponse = serde_json::from_slice(&response.body).map_err(|_| {
            Renewal::Failed(SourceError::Permanent("Strava's token answer is not the expected JSON".into()))
        })?;
        let rotated = answer.refresh_token.filter(|t| !t.is_empty()).unwrap_or_else(|| tokens.refresh.clone());
        // Send the new token from now on even if saving fails: the old one may be dead.
        tokens.refresh = rotated.clone();
        tokens.fallbacks.clear();
        if tokens.durable.as_deref() != Some(rotated.as_str()) {
            let state = serde_json::json!({
                "refresh_token": rotated,
                "rotated_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            self.state.save(&Self::state_key(&self.cache), state).await.map_err(|e| {
                Renewal::Failed(SourceError::Transient(format!("could not save the rotated Strava refresh token: {e}")))
            })?;
            tokens.durable = Some(rotated.clone());
            if let Some(path) = &self.settings.refresh_token_file {
                if let Err(e) = write_secret_file(path, &rotated).await {
                    // The StateStore copy is the one a restart prefers, so this is not fatal.
                    tracing::warn!(cache = %self.cache, error = %e, path = %path.display(), "could not rewrite refresh_token_file");
                }
            }
            tracing::info!(cache = %self.cache, "Strava rotated the refresh token; saved");
        }
        let expires_at = answer
            .expires_at
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .or_else(|| answer.expires_in.map(|s| now + chrono::Duration::seconds(s)))
            .unwrap_or_else(|| now + chrono::Duration::hours(6));
        // Renew a minute early; but a token handed out with less than that left is still
        // used until it expires rather than renewed on every call.
        let renew_after = if expires_at - EXPIRY_MARGIN > now { expires_at - EXPIRY_MARGIN } else { expires_at };
        tokens.access = Some((answer.access_token.clone(), renew_after));
        Ok(answer.access_token)
    }
}

/// Replaces `path` with `contents` so that a crash leaves the old or the new file, never
/// a torn one: temp file (0600) in the same directory, fsync, rename, fsync the directory.
async fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let path = path.to_owned();
    let contents = format!("{contents}\n");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| std::io::Error::other("refresh_token_file has no file name"))?;
        let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let _ = std::fs::remove_file(&tmp); // a leftover would keep its old mode
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
    .map_err(std::io::Error::other)?
}
