//! `[postgres]`, the one place of the config layer that knows its keys: the type `wiring`
//! builds the Postgres tier from, its defaults, the file's form, its checks, what
//! `check-config` prints, what a reload compares and how it treats each key. The
//! connection options and their defaults are the store's own [`ConnectOptions`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::durations::Dur;
use super::env_compat::is_postgres_url;
use super::paths::PathBase;
use super::raw::{non_empty, RawSecret};
use super::redacted::redact_url;
use super::{secrets, ConfigError, ConnectOptions, TlsMode};
use crate::reload::flatten::secret;
use crate::reload::table::Reload::{self, Applied, Restart};

/// `[postgres]`, the Supabase tier.
#[derive(Debug, Clone)]
pub(crate) struct PostgresSettings {
    pub enabled: bool,
    /// A `postgres://` or `postgresql://` connection string (checked); a secret
    /// because it usually holds the password.
    pub url: Option<SecretString>,
    /// Overrides a password in `url`; resolved (credentials directory included)
    /// and checked readable at load time.
    pub password_file: Option<PathBuf>,
    /// The other keys, as the store's own type (its defaults are the built-in ones).
    /// Checked: `pool_size` at least 1, `sslmode` one of the five names.
    pub options: ConnectOptions,
    /// How often the project's row heads are read to follow the other instances'
    /// writes; `None` (`"0s"`): only on notifications.
    pub heads_poll_interval: Option<Duration>,
    /// While Postgres is unreachable, `If-Match` is checked locally (this instance is
    /// the project's only one) instead of answered 503.
    pub single_instance: bool,
}

impl Default for PostgresSettings {
    /// Off, no connection string; the store's options ([`ConnectOptions::default`]).
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            password_file: None,
            options: ConnectOptions::default(),
            heads_poll_interval: Some(Duration::from_secs(2)),
            single_instance: false,
        }
    }
}

/// The section as written; also what `check-config` prints of it (the URL's password
/// redacted). An empty `url`, `password_file`, `sslmode` or `ssl_root_cert` is unset.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPostgres {
    enabled: bool,
    /// Read by the legacy `SUPABASE_URL` check (`env_compat`).
    #[serde(serialize_with = "redacted")]
    pub(super) url: RawSecret,
    password_file: String,
    sslmode: String,
    ssl_root_cert: String,
    pool_size: usize,
    statement_cache: bool,
    connect_timeout: Dur,
    statement_timeout: Dur,
    heads_poll_interval: Dur,
    single_instance: bool,
}

/// `url` as `check-config` prints it: see [`redact_url`].
fn redacted<S: Serializer>(url: &RawSecret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url.0.as_ref().map_or_else(String::new, |u| redact_url(u.expose_secret())))
}

impl Default for RawPostgres {
    fn default() -> Self {
        Self::from(&PostgresSettings::default())
    }
}

impl From<&PostgresSettings> for RawPostgres {
    fn from(s: &PostgresSettings) -> Self {
        let PostgresSettings {
            enabled,
            url,
            password_file,
            options:
                ConnectOptions { sslmode, ssl_root_cert, pool_size, statement_cache, connect_timeout, statement_timeout },
            heads_poll_interval,
            single_instance,
        } = s;
        let path = |p: &Option<PathBuf>| p.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        Self {
            enabled: *enabled,
            url: RawSecret(url.clone()),
            password_file: path(password_file),
            sslmode: sslmode.map_or("", |m| m.as_str()).to_owned(),
            ssl_root_cert: path(ssl_root_cert),
            pool_size: *pool_size,
            statement_cache: *statement_cache,
            connect_timeout: Dur(*connect_timeout),
            statement_timeout: Dur(*statement_timeout),
            heads_poll_interval: Dur(heads_poll_interval.unwrap_or_default()),
            single_instance: *single_instance,
        }
    }
}

impl RawPostgres {
    /// A connection string of the right scheme (required when enabled), a readable
    /// `password_file`, a known `sslmode`, at least one connection.
    pub(super) fn check(self, base: &PathBase<'_>) -> Result<PostgresSettings, ConfigError> {
        let url = self.url.into_option();
        match &url {
            Some(url) if !is_postgres_url(url.expose_secret()) => {
                return Err(ConfigError::new(
                    "postgres.url",
                    "expected a postgres:// or postgresql:// connection string",
                ))
            }
            None if self.enabled => {
                return Err(ConfigError::new(
                    "postgres.url",
                    "postgres.enabled is true but no connection string is set \
                     (postgres.url, SUPABASE_DB_URL or DATABASE_URL)",
                ))
            }
            _ => {}
        }
        let password_file = match non_empty(self.password_file) {
            // Read now only to fail at load time; the Postgres tier reads it again
            // when it connects, so a rotated password is picked up.
            Some(written) => {
                let located = base.locate("postgres.password_file", true, &written);
                secrets::read("postgres.password_file", &located)?;
                Some(located.path)
            }
            None => None,
        };
        let sslmode = match self.sslmode.as_str() {
            "" => None,
            // The one parser of modes, shared with a URL's `sslmode=` (which also takes `allow`).
            written => Some(TlsMode::parse(written).ok_or_else(|| {
                ConfigError::new(
                    "postgres.sslmode",
                    format!("expected disable, prefer, require, verify-ca or verify-full, got {written:?}"),
                )
            })?),
        };
        if self.pool_size == 0 {
            return Err(ConfigError::new("postgres.pool_size", "must be at least 1"));
        }
        Ok(PostgresSettings {
            enabled: self.enabled,
            url,
            password_file,
            options: ConnectOptions {
                sslmode,
                ssl_root_cert: non_empty(self.ssl_root_cert)
                    .map(|written| base.locate("postgres.ssl_root_cert", true, &written).path),
                pool_size: self.pool_size,
                statement_cache: self.statement_cache,
                connect_timeout: self.connect_timeout.0,
                statement_timeout: self.statement_timeout.0,
            },
            heads_poll_interval: Some(self.heads_poll_interval.0).filter(|d| !d.is_zero()),
            single_instance: self.single_instance,
        })
    }
}

/// What a reload compares: each key and its value (`Debug`), the URL as a fingerprint.
pub(crate) fn flat(pg: &PostgresSettings) -> [(&'static str, String); 11] {
    let PostgresSettings {
        enabled,
        url,
        password_file,
        options:
            ConnectOptions { sslmode, ssl_root_cert, pool_size, statement_cache, connect_timeout, statement_timeout },
        heads_poll_interval,
        single_instance,
    } = pg;
    [
        ("postgres.enabled", format!("{enabled:?}")),
        ("postgres.url", url.as_ref().map(secret).unwrap_or_default()),
        ("postgres.password_file", format!("{password_file:?}")),
        ("postgres.sslmode", format!("{sslmode:?}")),
        ("postgres.ssl_root_cert", format!("{ssl_root_cert:?}")),
        ("postgres.pool_size", format!("{pool_size:?}")),
        ("postgres.statement_cache", format!("{statement_cache:?}")),
        ("postgres.connect_timeout", format!("{connect_timeout:?}")),
        ("postgres.statement_timeout", format!("{statement_timeout:?}")),
        ("postgres.heads_poll_interval", format!("{heads_poll_interval:?}")),
        ("postgres.single_instance", format!("{single_instance:?}")),
    ]
}

const POOL: &str = "the Postgres pool (new connections; requests in flight finish on the old pool)";

/// How a reload treats each key: the pool's connection settings are applied, the rest
/// is decided at start.
pub(crate) const RELOAD: &[(&str, Reload)] = &[
    ("postgres.enabled", Restart),
    ("postgres.url", Applied(POOL)),
    ("postgres.password_file", Applied(POOL)),
    ("postgres.sslmode", Applied(POOL)),
    ("postgres.ssl_root_cert", Applied(POOL)),
    ("postgres.pool_size", Applied(POOL)),
    // Also decides at startup whether refresh leadership (session locks) is possible.
    ("postgres.statement_cache", Restart),
    ("postgres.connect_timeout", Applied(POOL)),
    ("postgres.statement_timeout", Applied(POOL)),
    ("postgres.heads_poll_interval", Restart),
    ("postgres.single_instance", Restart),
];
