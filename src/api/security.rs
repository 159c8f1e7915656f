//! The reloadable security policy of the API: tokens, allow-list and rate limiter;
//! built from the settings at startup (a problem is exit 78) and again on SIGHUP (a
//! problem rejects the reload and keeps the running policy). The per-cache JSON
//! Schemas are the caches' rules (`wiring::cache_rules`), not the API's.

use super::allow::AllowList;
use super::rate_limit::ClientRateLimiter;
use super::tls::{self, CertResolver};
use super::tokens::{TokenSet, TokensError};
use crate::config::{ConfigError, Settings};
use actix_web::HttpResponse;
use serde_json::json;
use std::sync::Arc;
use tiercache_actors::domain::CacheName;

/// Everything the guard middleware enforces.
#[derive(Debug, Default)]
pub(crate) struct Security {
    /// `None`: no `api.tokens_file`, no authentication.
    pub tokens: Option<Arc<TokenSet>>,
    /// `api.allow`.
    pub allow: AllowList,
    /// `None`: `api.rate_limit_per_second = 0`.
    pub limiter: Option<Arc<ClientRateLimiter>>,
    /// How many caches have a `schema` (only for the summary line: the schemas
    /// themselves are the caches' rules).
    pub schemas: usize,
    /// What `load` warned about (already logged), for `check-config` to print.
    pub warnings: Vec<String>,
}

fn config_error(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), problem: problem.into() }
}

impl Security {
    /// Builds the policy of `settings`. `previous` is the running policy on a reload:
    /// its rate limiter (and so what each client has used) is kept when the quota did
    /// not change.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault: `api.tokens_file` (with the line),
    /// `api.allow[i]`.
    pub(crate) fn load(settings: &Settings, previous: Option<&Security>) -> Result<Self, ConfigError> {
        let api = &settings.api;
        let mut warnings = Vec::new();
        let tokens = match &api.tokens_file {
            Some(located) => {
                let path = &located.path;
                let set = TokenSet::load(path).map_err(|e| {
                    let problem = match e {
                        // Where it was looked for: a relative name is easily looked for elsewhere.
                        TokensError::Unreadable { error, .. } => format!("cannot read {}: {error}", located.describe()),
                        other => other.to_string(),
                    };
                    config_error("api.tokens_file", problem)
                })?;
                if set.has_plain_tokens() {
                    warnings.extend(warn_if_readable_by_others(path));
                }
                if set.is_empty() {
                    let warning = "api.tokens_file holds no token: every /v1 request will be refused with 401";
                    tracing::warn!("{warning}");
                    warnings.push(warning.to_owned());
                }
                Some(Arc::new(set))
            }
            None => {
                if previous.is_some_and(|p| p.tokens.is_some()) {
                    tracing::warn!("api.tokens_file is no longer set: /v1 requests need no token from now on");
                }
                None
            }
        };
        let allow =
            AllowList::parse(&api.allow).map_err(|(i, problem)| config_error(format!("api.allow[{i}]"), problem))?;
        let limiter = match previous.and_then(|p| p.limiter.as_ref()) {
            Some(running) if running.same_quota(api.rate_limit_per_second, api.rate_limit_burst) => {
                Some(running.clone())
            }
            _ => ClientRateLimiter::new(api.rate_limit_per_second, api.rate_limit_burst).map(Arc::new),
        };
        let schemas = settings.caches.iter().filter(|c| c.schema.is_some()).count();
        Ok(Self { tokens, allow, limiter, schemas, warnings })
    }

    /// One log line's worth of what is enforced (counts only, never a token).
    pub(crate) fn log_summary(&self, what: &str) {
        tracing::info!(
            tokens = self.tokens.as_ref().map(|t| t.len()),
            allow = (!self.allow.is_empty()).then(|| self.allow.len()),
            rate_limit = self.limiter.is_some(),
            schemas = self.schemas,
            "{what}"
        );
    }
}

/// Why a tokens file with clear tokens should not be world-readable.
const READABLE_BY_OTHERS: &str = "api.tokens_file holds tokens in clear and is readable by every user of this \
     machine; chmod 0600 or 0640 it, or give the tokens as sha256:HEX";

/// Logs and returns a warning when a tokens file with clear tokens is world-readable.
fn warn_if_readable_by_others(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o004 == 0 {
        return None;
    }
    tracing::warn!(path = %path.display(), "{READABLE_BY_OTHERS}");
    Some(format!("{READABLE_BY_OTHERS} ({})", path.display()))
}

/// The TLS certificate resolver of `settings`, when `api.tls_cert` and `api.tls_key`
/// are set.
///
/// # Errors
/// A [`ConfigError`] naming `api.tls_cert` or `api.tls_key`.
pub(crate) fn tls_from(settings: &Settings) -> Result<Option<Arc<CertResolver>>, ConfigError> {
    match (&settings.api.tls_cert, &settings.api.tls_key) {
        (Some(cert), Some(key)) => {
            CertResolver::load(cert, key).map(|r| Some(Arc::new(r))).map_err(|e| config_error(e.key, e.problem))
        }
        _ => Ok(None),
    }
}

/// On SIGHUP: loads the new certificate and key (without serving them yet).
///
/// # Errors
/// A [`ConfigError`] naming the file's key.
pub(crate) fn load_tls_for_reload(settings: &Settings) -> Result<Option<rustls::sign::CertifiedKey>, ConfigError> {
    match (&settings.api.tls_cert, &settings.api.tls_key) {
        (Some(cert), Some(key)) => {
            tls::load_certified_key(cert, key).map(Some).map_err(|e| config_error(e.key, e.problem))
        }
        _ => Ok(None),
    }
}

/// 422 for a document that fails its cache's schema: `{"error", "code", "errors"}`
/// with the first few problems.
pub(crate) fn schema_rejection(name: &CacheName, errors: &[String]) -> HttpResponse {
    let first = errors.first().map(String::as_str).unwrap_or("invalid");
    HttpResponse::UnprocessableEntity().content_type("application/json").body(super::error::json_line(&json!({
        "error": format!("the document does not match the schema of cache {name}: {first}"),
        "code": "schema_mismatch",
        "errors": errors,
    })))
}
