//! The effective configuration as TOML with secrets replaced: `check-config`'s output.
//!
//! A separate serialize-only mirror rather than `Serialize` on [`Settings`], so a
//! secret can only reach the output through a line that redacts it: here for the
//! caches' sources, in `postgres.rs` for the URL and in `webhooks.rs` for the verify
//! token. The other sections print their raw form (`RawApi`, `RawRetry`, …).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::api::RawApi;
use super::durations::{format_duration, format_size};
use super::log::RawLog;
use super::memory::RawMemory;
use super::postgres::RawPostgres;
use super::refresh::RawRefresh;
use super::retry::RawRetry;
use super::shutdown::RawShutdown;
use super::supervisor::RawSupervisor;
use super::webhooks::PrintedWebhooks;
use super::{CacheSettings, Settings, SourceConfig};
use tiercache_actors::refresher::sources::strava;

/// What every secret prints as.
pub(super) const REDACTED: &str = "[redacted]";

#[derive(Serialize)]
struct Doc {
    project: String,
    data_dir: String,
    log: RawLog,
    api: RawApi,
    memory: RawMemory,
    postgres: RawPostgres,
    retry: RawRetry,
    shutdown: RawShutdown,
    refresh: RawRefresh,
    supervisor: RawSupervisor,
    webhooks: PrintedWebhooks,
    caches: Vec<Cache>,
}

#[derive(Serialize)]
struct Cache {
    name: String,
    refresh_every: String,
    rich_refresh_every: String,
    max_size: String,
    retention_days: u32,
    schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

/// Only the keys of the source's kind are present.
#[derive(Serialize, Default)]
struct Source {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_short_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_refresh_every: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    /// Last: TOML writes a nested table after the plain keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<BTreeMap<String, &'static str>>,
}

/// Serializes `settings` as TOML with every secret replaced by [`REDACTED`].
pub(super) fn to_toml(s: &Settings) -> String {
    let doc = Doc {
        project: s.project.clone(),
        data_dir: path(&s.data_dir),
        log: RawLog::printed(&s.log),
        api: RawApi::from(&s.api),
        memory: RawMemory::from(&s.memory),
        postgres: RawPostgres::from(&s.postgres),
        retry: RawRetry::from(&s.retry),
        shutdown: RawShutdown::from(&s.shutdown),
        refresh: RawRefresh::from(&s.refresh),
        supervisor: RawSupervisor::from(&s.supervisor),
        webhooks: PrintedWebhooks::from(&s.webhooks),
        caches: s.caches.iter().map(cache).collect(),
    };
    // Plain strings, numbers and tables of them: serialization cannot fail.
    toml::to_string(&doc).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
}

fn cache(c: &CacheSettings) -> Cache {
    Cache {
        name: c.name.to_string(),
        refresh_every: opt_duration(c.refresh_every),
        rich_refresh_every: opt_duration(c.rich_refresh_every),
        max_size: format_size(c.max_size),
        retention_days: c.retention_days,
        schema: opt_path(c.schema.as_deref()),
        source: c.source.as_ref().map(|s| source(s, &c.secret_files)),
    }
}

/// A source's keys; a secret given as a `_file` key is shown as that key, as written,
/// and one given inline as `[redacted]`.
fn source(s: &SourceConfig, files: &BTreeMap<&'static str, String>) -> Source {
    let kind = s.kind();
    // (inline, file): exactly one is set for a secret that is set.
    let secret = |field: &str| match files.get(field) {
        Some(written) => (None, Some(written.clone())),
        None => (Some(REDACTED), None),
    };
    match s {
        SourceConfig::Strava(strava::Settings { client_id, base_url, per_page, full_refresh_every, .. }) => {
            let (client_secret, client_secret_file) = secret("client_secret");
            let (refresh_token, refresh_token_file) = secret("refresh_token");
            Source {
                kind,
                client_id: Some(client_id.clone()),
                client_secret,
                client_secret_file,
                refresh_token,
                refresh_token_file,
                base_url: Some(base_url.clone()),
                per_page: Some(*per_page),
                full_refresh_every: Some(format_duration(*full_refresh_every)),
                ..Source::default()
            }
        }
        SourceConfig::Justgiving { page_short_name, base_url, .. } => {
            let (app_id, app_id_file) = secret("app_id");
            Source {
                kind,
                app_id,
                app_id_file,
                page_short_name: Some(page_short_name.clone()),
                base_url: Some(base_url.clone()),
                ..Source::default()
            }
        }
        SourceConfig::Http { url, headers, bearer_token } => {
            let (inline, bearer_token_file) = secret("bearer_token");
            Source {
                kind,
                url: Some(redact_url(url)),
                // Header values are often credentials (Authorization, API keys).
                headers: Some(headers.keys().map(|k| (k.clone(), REDACTED)).collect()),
                bearer_token: bearer_token.as_ref().and(inline),
                bearer_token_file,
                ..Source::default()
            }
        }
        SourceConfig::Command { argv, timeout } => {
            Source { kind, argv: Some(argv.clone()), timeout: Some(format_duration(*timeout)), ..Source::default() }
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn opt_path(p: Option<&Path>) -> String {
    p.map(path).unwrap_or_default()
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map(format_duration).unwrap_or_default()
}

/// A URL safe to print: the password of `user:password@` replaced, and the whole
/// URL replaced when its query may carry a credential (`?password=`, `?token=`…).
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we understand: it may be anything, print nothing of it.
        return REDACTED.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let lower_tail = tail.to_ascii_lowercase();
    if ["password", "token", "secret", "key"].iter().any(|word| lower_tail.contains(word)) {
        return REDACTED.to_owned();
    }
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:{REDACTED}@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db.example.com:5432/postgres"),
            "postgres://app:[redacted]@db.example.com:5432/postgres"
        );
        assert_eq!(
            redact_url("postgres://app@db/postgres?sslmode=require"),
            "postgres://app@db/postgres?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/x?password=hunter2"), REDACTED);
        assert_eq!(redact_url("postgresql://u:p%40ss@host/db"), "postgresql://u:[redacted]@host/db");
        assert_eq!(redact_url("garbage hunter2"), REDACTED);
        assert_eq!(redact_url("https://api.example.com/x"), "https://api.example.com/x");
    }
}
