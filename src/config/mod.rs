//! The configuration layer: built-in defaults, the TOML file, the legacy
//! variables and `TIERCACHE__` overrides, merged and validated into [`Settings`].
//!
//! Everything is checked here, once, before anything binds or spawns; the rest of
//! the program reads typed values and never re-validates. `check-config` and `run`
//! both go through [`Settings::load`].

pub(crate) mod api;
mod durations;
mod env_compat;
pub(crate) mod exposure;
pub(crate) mod layers;
pub(crate) mod log;
pub(crate) mod memory;
mod net;
mod paths;
pub(crate) mod postgres;
mod raw;
mod redacted;
pub(crate) mod refresh;
pub(crate) mod retry;
mod secrets;
pub(crate) mod shutdown;
pub(crate) mod supervisor;
mod validate;
pub(crate) mod webhooks;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use api::ApiSettings;
pub(crate) use durations::invalid_duration;
pub(crate) use layers::DEFAULT_FILE;
pub(crate) use log::LogSettings;
pub(crate) use memory::MemorySettings;
pub(crate) use net::ListenAddr;
pub(crate) use paths::Located;
pub(crate) use postgres::PostgresSettings;
pub(crate) use refresh::RefreshSettings;
pub(crate) use shutdown::ShutdownSettings;
pub(crate) use tiercache_actors::domain::CacheName;
pub(crate) use tiercache_actors::refresher::sources::SourceConfig;
pub(crate) use tiercache_actors::retry_queue::{BackoffPolicy, RetryPolicy};
pub(crate) use tiercache_actors::store::{ConnectOptions, TlsMode};
pub(crate) use tiercache_actors::supervisor::RestartPolicy;
pub(crate) use webhooks::WebhookSettings;

/// The environment lookup: `std::env::var` in production, a map in tests, so that
/// nothing here ever reads or writes the process environment directly.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A configuration error, printed by the binary as one line before exit 78.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: {key}: {problem}")]
pub(crate) struct ConfigError {
    /// The key as the operator wrote it: `caches[1].refresh_every`, `api.foo`, or a
    /// variable name such as `STRAVA_CACHE_HOURS`.
    pub key: String,
    /// What is wrong with it; never quotes a secret.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }
}

/// The validated configuration of one tiercache process.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Which project's rows this instance owns in the shared Postgres tables.
    pub project: String,
    /// Envelope files, the lock file and exports; relative paths stay relative to
    /// the working directory.
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub api: ApiSettings,
    pub memory: MemorySettings,
    pub postgres: PostgresSettings,
    /// `[retry]`, as the retry queue's own type (see `retry.rs`).
    pub retry: RetryPolicy,
    pub shutdown: ShutdownSettings,
    pub refresh: RefreshSettings,
    /// `[supervisor]`, as the supervisor's own type (see `supervisor.rs`):
    /// `max_restarts` restarts of one actor within `window` (`restart_window`), more
    /// means exit 70.
    pub supervisor: RestartPolicy,
    pub webhooks: WebhookSettings,
    pub caches: Vec<CacheSettings>,
    /// Non-fatal notes for the startup log (config is loaded before logging is up).
    pub warnings: Vec<String>,
}

/// One `[[caches]]` entry.
#[derive(Debug, Clone)]
pub(crate) struct CacheSettings {
    pub name: CacheName,
    /// `None`: never refreshed on a schedule (filled by PUT or on demand).
    pub refresh_every: Option<Duration>,
    pub rich_refresh_every: Option<Duration>,
    /// Largest accepted document, in bytes.
    pub max_size: u64,
    pub retention_days: u32,
    /// Optional JSON Schema file for integrity checks.
    pub schema: Option<PathBuf>,
    /// `None`: the cache is filled by PUT. The refresher's own type, secrets already
    /// read from env or files; its `Debug` redacts them.
    pub source: Option<SourceConfig>,
    /// The source's secrets given as `_file` keys (`client_secret` → the file name as
    /// written), so `check-config` prints `client_secret_file = "..."` rather than a
    /// redacted `client_secret`.
    pub secret_files: BTreeMap<&'static str, String>,
}

impl Settings {
    /// Loads, merges and validates the configuration.
    ///
    /// `file` is the `--config` path; `None` reads [`DEFAULT_FILE`] if it exists,
    /// else uses the built-in defaults (memory and file tiers, the two seed caches).
    /// `env` looks up environment variables; pass `&|k| std::env::var(k).ok()`.
    ///
    /// # Errors
    /// The first problem found, as a [`ConfigError`] naming its key.
    pub(crate) fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let file = layers::read_file(file)?;
        Self::load_text(file.as_ref(), env)
    }

    /// [`Settings::load`] after the file is read; tests start here so that a stray
    /// `./tiercache.toml` cannot change their outcome.
    fn load_text(file: Option<&(PathBuf, String)>, env: Env<'_>) -> Result<Settings, ConfigError> {
        let legacy = env_compat::Legacy::read(env)?;
        let mut raw = layers::merge(file, &legacy, env)?;
        let mut warnings = legacy.warnings.clone();
        legacy.apply(&mut raw, &mut warnings)?;
        validate::settings(raw, env, file.map(|(path, _)| path.as_path()), warnings)
    }

    /// The effective configuration as TOML, with every secret replaced by
    /// `"[redacted]"`: what `check-config` prints. Keys are the appendix's, so the
    /// output, once secrets are filled back in, is itself a valid config file.
    pub(crate) fn to_redacted_toml(&self) -> String {
        redacted::to_toml(self)
    }
}
