//! `[webhooks]`, the one place of the config layer that knows its keys: the type the API
//! reads, the file's form, its checks, what `check-config` prints, what a reload compares
//! and how it treats each key.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::paths::PathBase;
use super::raw::{non_empty, RawSecret};
use super::redacted::REDACTED;
use super::{secrets, ConfigError};
use crate::reload::flatten::secret;
use crate::reload::table::{
    Reload::{self, Applied},
    API_POLICY,
};

/// `[webhooks]`: push notifications from upstream APIs. Off by default.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookSettings {
    /// The token Strava's subscription handshake must present; `None`: the
    /// `/v1/webhooks/strava` routes answer 404.
    pub strava_verify_token: Option<SecretString>,
    /// Where it was read from, if from a file (shown by `check-config`).
    pub strava_verify_token_file: Option<PathBuf>,
}

/// The section as written: both keys unset, as in [`WebhookSettings::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWebhooks {
    strava_verify_token: RawSecret,
    strava_verify_token_file: String,
}

impl RawWebhooks {
    /// The verify token inline or from a file, not both; printable ASCII without spaces,
    /// as it travels in a query string.
    pub(super) fn check(self, base: &PathBase<'_>) -> Result<WebhookSettings, ConfigError> {
        let inline = self.strava_verify_token.0.filter(|s| !s.expose_secret().is_empty());
        let (token, file) = match (inline, non_empty(self.strava_verify_token_file)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "webhooks.strava_verify_token_file",
                    "set either strava_verify_token or strava_verify_token_file, not both",
                ))
            }
            (Some(token), None) => (Some(token), None),
            (None, Some(written)) => {
                let key = "webhooks.strava_verify_token_file";
                let located = base.locate(key, true, &written);
                (Some(secrets::read(key, &located)?), Some(located.path))
            }
            (None, None) => (None, None),
        };
        if token.as_ref().is_some_and(|t| !t.expose_secret().bytes().all(|b| b.is_ascii_graphic())) {
            let key = if file.is_some() { "webhooks.strava_verify_token_file" } else { "webhooks.strava_verify_token" };
            return Err(ConfigError::new(key, "must be printable ASCII without spaces"));
        }
        Ok(WebhookSettings { strava_verify_token: token, strava_verify_token_file: file })
    }
}

/// What `check-config` prints: both keys always (empty when unset); an inline token as
/// [`REDACTED`].
#[derive(Serialize)]
pub(crate) struct PrintedWebhooks {
    strava_verify_token: &'static str,
    strava_verify_token_file: String,
}

impl From<&WebhookSettings> for PrintedWebhooks {
    fn from(s: &WebhookSettings) -> Self {
        let WebhookSettings { strava_verify_token, strava_verify_token_file } = s;
        Self {
            strava_verify_token: match (strava_verify_token, strava_verify_token_file) {
                (Some(_), None) => REDACTED,
                _ => "",
            },
            strava_verify_token_file: strava_verify_token_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// What a reload compares: each key and its value (`Debug`), the token as a fingerprint.
pub(crate) fn flat(s: &WebhookSettings) -> [(&'static str, String); 2] {
    let WebhookSettings { strava_verify_token, strava_verify_token_file } = s;
    let token = strava_verify_token.as_ref().map(secret).unwrap_or_default();
    [
        ("webhooks.strava_verify_token", format!("{token:?}")),
        ("webhooks.strava_verify_token_file", format!("{strava_verify_token_file:?}")),
    ]
}

/// How a reload treats each key: the API answers the handshake with the new token.
pub(crate) const RELOAD: &[(&str, Reload)] = &[
    ("webhooks.strava_verify_token", Applied(API_POLICY)),
    ("webhooks.strava_verify_token_file", Applied(API_POLICY)),
];
