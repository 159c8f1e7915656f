//! The legacy environment variables of the app tiercache replaces (`SUPABASE_*`,
//! `PROJECT_ID`, …), which existing deployments set and which must keep working.
//!
//! They are read through the injected lookup and never written back. Scalar keys
//! become a `config::Source` stacked between the file and the `TIERCACHE__`
//! overrides; the two per-cache intervals are applied after deserialization,
//! because the `caches` array cannot be addressed by a configuration key.

use std::fmt;
use std::time::Duration;

use ::config::{Map, Source, Value, ValueKind};

use super::durations::{format_duration, OptDur};
use super::raw::RawSettings;
use super::{ConfigError, Env};

/// What the legacy variables say, checked and typed.
pub(crate) struct Legacy {
    /// Scalar settings, as (config key, value), in the order they were read.
    values: Vec<(&'static str, ValueKind)>,
    strava_every: Option<Duration>,
    fundraising_every: Option<Duration>,
    supabase_url: Option<String>,
    /// Notes for the startup log.
    pub warnings: Vec<String>,
}

impl Legacy {
    /// Reads every legacy variable; an empty value counts as unset, as in a `.env`
    /// file with a blank line for an optional variable.
    ///
    /// # Errors
    /// A [`ConfigError`] whose key is the variable's name.
    pub(crate) fn read(env: Env<'_>) -> Result<Self, ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut values = Vec::new();
        let mut warnings = Vec::new();

        let flags = [
            ("SUPABASE_ENABLED", "postgres.enabled"),
            ("GRACEFUL_SHUTDOWN", "shutdown.graceful"),
            ("EMERGENCY_REFRESH", "refresh.emergency"),
            ("BACKGROUND_RETRY", "retry.enabled"),
        ];
        for (name, key) in flags {
            if let Some(v) = get(name) {
                values.push((key, ValueKind::Boolean(parse_flag(name, &v)?)));
            }
        }

        // SUPABASE_DB_URL wins over DATABASE_URL: it is the more specific name.
        let db_url = ["SUPABASE_DB_URL", "DATABASE_URL"].into_iter().find_map(|name| get(name).map(|v| (name, v)));
        if let Some((name, url)) = db_url {
            if !is_postgres_url(&url) {
                // The value is a secret: say what is wrong without quoting it.
                return Err(ConfigError::new(name, "expected a postgres:// or postgresql:// connection string"));
            }
            values.push(("postgres.url", ValueKind::String(url)));
        }

        if get("SUPABASE_SERVICE_KEY").is_some() {
            warnings.push(
                "SUPABASE_SERVICE_KEY is set but not used: tiercache connects to Postgres \
                 directly with SUPABASE_DB_URL"
                    .to_owned(),
            );
        }

        if let Some(project) = get("PROJECT_ID") {
            values.push(("project", ValueKind::String(project)));
        }

        if let Some(v) = get("CACHE_TTL_SECONDS") {
            let ttl = parse_amount("CACHE_TTL_SECONDS", &v, 1.0, "seconds", true)?;
            values.push(("memory.ttl", ValueKind::String(format_duration(ttl))));
        }

        let strava_every = get("STRAVA_CACHE_HOURS")
            .map(|v| parse_amount("STRAVA_CACHE_HOURS", &v, 3600.0, "hours", false))
            .transpose()?;
        let fundraising_every = get("FUNDRAISING_CACHE_MINUTES")
            .map(|v| parse_amount("FUNDRAISING_CACHE_MINUTES", &v, 60.0, "minutes", false))
            .transpose()?;

        Ok(Self { values, strava_every, fundraising_every, supabase_url: get("SUPABASE_URL"), warnings })
    }

    /// The scalar settings as a layer for the config builder.
    pub(crate) fn source(&self) -> LegacySource {
        let origin = "the legacy environment variables".to_owned();
        LegacySource {
            values: self.values.iter().map(|(key, kind)| (*key, Value::new(Some(&origin), kind.clone()))).collect(),
        }
    }

    /// Applies what could not be a layer: the per-cache intervals, and the check
    /// of `SUPABASE_URL` against the merged `postgres.url`.
    ///
    /// # Errors
    /// A [`ConfigError`] keyed `SUPABASE_URL` when only the project's API URL is
    /// given, since a direct connection needs the database connection string.
    pub(crate) fn apply(&self, raw: &mut RawSettings, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if let Some(url) = &self.supabase_url {
            let have_db_url = raw.postgres.url.clone().into_option().is_some();
            let api_url = url.starts_with("https://") || url.starts_with("http://");
            if api_url && !have_db_url {
                return Err(ConfigError::new(
                    "SUPABASE_URL",
                    "is the project's API URL, but tiercache connects to the database \
                     directly: set SUPABASE_DB_URL to its postgres:// connection string \
                     (Supabase: Project Settings, Database, Connection string)",
                ));
            }
            warnings.push(
                "SUPABASE_URL is set but not used: the database connection string comes from \
                 postgres.url or SUPABASE_DB_URL"
                    .to_owned(),
            );
        }

        let intervals = [
            ("STRAVA_CACHE_HOURS", "strava", self.strava_every),
            ("FUNDRAISING_CACHE_MINUTES", "fundraising", self.fundraising_every),
        ];
        for (var, name, every) in intervals {
            let Some(every) = every else { continue };
            let mut found = false;
            for cache in raw.caches.iter_mut().filter(|c| c.name == name) {
                cache.refresh_every = OptDur(Some(every));
                found = true;
            }
            if !found {
                warnings.push(format!("{var} is set but no cache named \"{name}\" is configured; ignored"));
            }
        }
        Ok(())
    }
}

/// The legacy layer as the `config` crate sees it.
#[derive(Clone)]
pub(crate) struct LegacySource {
    values: Vec<(&'static str, Value)>,
}

impl fmt::Debug for LegacySource {
    // Keys only: `postgres.url` may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values.iter().map(|(key, _)| key)).finish()
    }
}

impl Source for LegacySource {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, ::config::ConfigError> {
        Ok(self.values.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect())
    }
}

/// Whether `url` is a connection string the Postgres driver accepts.
pub(super) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn parse_flag(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(name, format!("expected true/false, 1/0 or yes/no, got {value:?}"))),
    }
}

/// Reads an integer or decimal amount of `unit` (`secs_per_unit` seconds each).
fn parse_amount(
    name: &str,
    value: &str,
    secs_per_unit: f64,
    unit: &str,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let bad = || {
        let which = if zero_ok { "non-negative" } else { "positive" };
        ConfigError::new(name, format!("expected a {which} number of {unit}, got {value:?}"))
    };
    let amount: f64 = value.trim().parse().map_err(|_| bad())?;
    if !amount.is_finite() || amount < 0.0 || (amount == 0.0 && !zero_ok) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(amount * secs_per_unit).map_err(|_| bad())
}
