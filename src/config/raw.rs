//! The serde mirror of the TOML file: every documented key (docs/config.md), nothing more.
//! The top-level keys and `[[caches]]` are here; every other section's form is in its
//! own file (`api.rs`, `postgres.rs`, …), which also checks it.
//!
//! Types here only say what shape a value has; meaning (cache names, which source keys
//! go together) is checked in `validate.rs`, where the error can name the key.
//! Defaults live in the `Default` impls so that a missing file, a missing section and
//! a missing key all mean the same thing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use tiercache_actors::cache_rules::DEFAULT_RETENTION_DAYS;

use super::api::RawApi;
use super::durations::{Dur, OptDur, Size};
use super::log::RawLog;
use super::memory::RawMemory;
use super::postgres::RawPostgres;
use super::refresh::RawRefresh;
use super::retry::RawRetry;
use super::shutdown::RawShutdown;
use super::supervisor::RawSupervisor;
use super::webhooks::RawWebhooks;

/// Default `max_size` of a cache and `max_body` of the API.
pub(super) const DEFAULT_SIZE: u64 = 16 << 20;

/// The whole file, after the layers are merged.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub project: String,
    pub data_dir: String,
    pub log: RawLog,
    pub api: RawApi,
    pub memory: RawMemory,
    pub postgres: RawPostgres,
    pub retry: RawRetry,
    pub shutdown: RawShutdown,
    pub refresh: RawRefresh,
    pub supervisor: RawSupervisor,
    pub webhooks: RawWebhooks,
    /// A file without `[[caches]]` still gets the two built-in caches: a config
    /// written only to point at Postgres should not silently serve 404s for
    /// `strava` and `fundraising`. Declaring any `[[caches]]` replaces both.
    pub caches: Vec<RawCache>,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            project: "default".into(),
            data_dir: "./data".into(),
            log: RawLog::default(),
            api: RawApi::default(),
            memory: RawMemory::default(),
            postgres: RawPostgres::default(),
            retry: RawRetry::default(),
            shutdown: RawShutdown::default(),
            refresh: RawRefresh::default(),
            supervisor: RawSupervisor::default(),
            webhooks: RawWebhooks::default(),
            caches: vec![
                RawCache::seed("strava", 6 * 3600, Some(24 * 3600)),
                RawCache::seed("fundraising", 15 * 60, None),
            ],
        }
    }
}

/// One `[[caches]]` entry. Only `name` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub name: String,
    #[serde(default)]
    pub refresh_every: OptDur,
    #[serde(default)]
    pub rich_refresh_every: OptDur,
    #[serde(default = "default_size")]
    pub max_size: Size,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub source: Option<RawSource>,
}

impl RawCache {
    fn seed(name: &str, every_secs: u64, rich_secs: Option<u64>) -> Self {
        Self {
            name: name.into(),
            refresh_every: OptDur(Some(Duration::from_secs(every_secs))),
            rich_refresh_every: OptDur(rich_secs.map(Duration::from_secs)),
            max_size: default_size(),
            retention_days: default_retention_days(),
            schema: String::new(),
            source: None,
        }
    }
}

fn default_size() -> Size {
    Size(DEFAULT_SIZE)
}

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// `[caches.source]`, flat: the keys of every kind side by side.
///
/// A flat struct rather than a serde-tagged enum so that every error, including a
/// bad `timeout` inside a command source, keeps its full key path; `validate.rs`
/// then refuses keys that do not belong to the chosen `kind`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub kind: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<RawSecret>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<RawSecret>,
    #[serde(default)]
    pub refresh_token_file: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub full_refresh_every: Option<Dur>,
    #[serde(default)]
    pub app_id: Option<RawSecret>,
    #[serde(default)]
    pub app_id_file: Option<String>,
    #[serde(default)]
    pub page_short_name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub bearer_token: Option<RawSecret>,
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<Dur>,
}

impl RawSource {
    /// The keys set beside `kind`, in the order they are declared. Every field is named
    /// here, so a new key does not compile until it is listed.
    pub(crate) fn set_keys(&self) -> Vec<&'static str> {
        let Self {
            kind: _,
            client_id,
            client_secret,
            client_secret_file,
            refresh_token,
            refresh_token_file,
            base_url,
            per_page,
            full_refresh_every,
            app_id,
            app_id_file,
            page_short_name,
            url,
            headers,
            bearer_token,
            bearer_token_file,
            argv,
            timeout,
        } = self;
        [
            ("client_id", client_id.is_some()),
            ("client_secret", client_secret.is_some()),
            ("client_secret_file", client_secret_file.is_some()),
            ("refresh_token", refresh_token.is_some()),
            ("refresh_token_file", refresh_token_file.is_some()),
            ("base_url", base_url.is_some()),
            ("per_page", per_page.is_some()),
            ("full_refresh_every", full_refresh_every.is_some()),
            ("app_id", app_id.is_some()),
            ("app_id_file", app_id_file.is_some()),
            ("page_short_name", page_short_name.is_some()),
            ("url", url.is_some()),
            ("headers", headers.is_some()),
            ("bearer_token", bearer_token.is_some()),
            ("bearer_token_file", bearer_token_file.is_some()),
            ("argv", argv.is_some()),
            ("timeout", timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// `""` means unset throughout the appendix.
pub(super) fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// A secret as read from the file or the environment: wrapped at once, so not even
/// the raw layer can print it.
#[derive(Clone, Default)]
pub(crate) struct RawSecret(pub Option<SecretString>);

impl RawSecret {
    /// The secret, with the appendix's `""` meaning "not set".
    pub(crate) fn into_option(self) -> Option<SecretString> {
        use secrecy::ExposeSecret;
        self.0.filter(|s| !s.expose_secret().is_empty())
    }
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "[redacted]" } else { "unset" })
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(RawSecret(Some(SecretString::from(s))))
    }
}

/// A list of strings that also accepts one comma-separated string, because an
/// environment variable such as `TIERCACHE__API__LISTEN` can only carry a string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StringList(pub Vec<String>);

/// Written back as a list (`check-config`).
impl Serialize for StringList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or one comma-separated string")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<StringList, E> {
                Ok(StringList(s.split(',').map(str::trim).filter(|part| !part.is_empty()).map(str::to_owned).collect()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }

        d.deserialize_any(ListVisitor)
    }
}
