//! Which source a cache has, as the config layer resolved it (secrets already read
//! from env or files), and how to build it.

use super::client::HttpClient;
use super::clock::{Clock, SystemClock};
use super::command::CommandSource;
use super::conditional::Conditional;
use super::http::{HttpEndpoint, HttpSource};
use super::justgiving::{JustGivingPage, JustGivingSource};
use super::strava::{self, StravaSource};
use super::{Source, StateStore};
use crate::domain::CacheName;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Strava's API origin: the default `base_url` of a strava source.
pub const STRAVA_BASE_URL: &str = "https://www.strava.com";
/// JustGiving's API origin: the default `base_url` of a justgiving source.
pub const JUSTGIVING_BASE_URL: &str = "https://api.justgiving.com";
/// Strava's largest page of activities: the config's limit and default for
/// `per_page`, and the source's clamp.
pub const STRAVA_MAX_PER_PAGE: u32 = 200;

/// One cache's source. `Debug` redacts every secret, so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// `kind = "strava"`: the source's own settings, as it runs with them.
    Strava(strava::Settings),
    /// `kind = "justgiving"`.
    Justgiving {
        /// The application id (a path segment of every call).
        app_id: String,
        /// The fundraising page.
        page_short_name: String,
        /// Scheme, host and port; [`JUSTGIVING_BASE_URL`] in production.
        base_url: String,
    },
    /// `kind = "http"`.
    Http {
        /// The JSON document's URL.
        url: String,
        /// Extra request headers (values may be secrets).
        headers: BTreeMap<String, String>,
        /// Sent as `Authorization: Bearer …`.
        bearer_token: Option<String>,
    },
    /// `kind = "command"`.
    Command {
        /// Program and arguments, run without a shell.
        argv: Vec<String>,
        /// Killed after this (or the fetch timeout, if shorter).
        timeout: Duration,
    },
}

/// Declares [`SourceKind`] with its [`SourceKind::ALL`] and names from one list, so a
/// kind cannot be declared without being listed or named.
macro_rules! source_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)+) => {
        /// A source's `kind`: the one list of kinds. Every match over it is exhaustive,
        /// so a new kind does not compile until the config layer checks, prints and
        /// compares its keys.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum SourceKind {
            $($(#[$doc])* $kind,)+
        }

        impl SourceKind {
            /// Every kind, in the order error messages list them.
            pub const ALL: &'static [SourceKind] = &[$(Self::$kind),+];

            /// The name `kind = "…"` gives it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)+
                }
            }
        }
    };
}

source_kinds! {
    /// [`SourceConfig::Strava`].
    Strava = "strava",
    /// [`SourceConfig::Justgiving`].
    Justgiving = "justgiving",
    /// [`SourceConfig::Http`].
    Http = "http",
    /// [`SourceConfig::Command`].
    Command = "command",
}

impl SourceKind {
    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == name)
    }
}

impl SourceConfig {
    /// Which kind of source this is.
    pub fn source_kind(&self) -> SourceKind {
        match self {
            Self::Strava { .. } => SourceKind::Strava,
            Self::Justgiving { .. } => SourceKind::Justgiving,
            Self::Http { .. } => SourceKind::Http,
            Self::Command { .. } => SourceKind::Command,
        }
    }

    /// `strava`, `justgiving`, `http` or `command`.
    pub fn kind(&self) -> &'static str {
        self.source_kind().as_str()
    }
}

const REDACTED: &str = "<redacted>";

/// Shows as `<redacted>` in `Debug` output.
pub(super) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Strava(settings) => settings.fmt(f),
            Self::Justgiving { app_id: _, page_short_name, base_url } => f
                .debug_struct("Justgiving")
                .field("app_id", &Redacted)
                .field("page_short_name", page_short_name)
                .field("base_url", base_url)
                .finish(),
            Self::Http { url, headers, bearer_token } => {
                let headers: BTreeMap<&str, Redacted> = headers.keys().map(|k| (k.as_str(), Redacted)).collect();
                f.debug_struct("Http")
                    .field("url", &super::client::origin(url))
                    .field("headers", &headers)
                    .field("bearer_token", &bearer_token.as_ref().map(|_| Redacted))
                    .finish()
            }
            Self::Command { argv, timeout } => {
                // Arguments can carry secrets; the program name is enough to recognise it.
                let program = argv.first().map(String::as_str).unwrap_or("");
                f.debug_struct("Command")
                    .field("program", &program)
                    .field("args", &format_args!("<{} redacted>", argv.len().saturating_sub(1)))
                    .field("timeout", timeout)
                    .finish()
            }
        }
    }
}

/// Builds the source of `cache` on the system clock.
pub fn build(cache: &CacheName, config: SourceConfig, state: Arc<dyn StateStore>) -> Arc<dyn Source> {
    build_with_clock(cache, config, state, Arc::new(SystemClock))
}

/// Builds the source of `cache` on `clock` (tests drive rate-limit windows and expiry).
pub fn build_with_clock(
    cache: &CacheName,
    config: SourceConfig,
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
) -> Arc<dyn Source> {
    let client = HttpClient::new();
    match config {
        SourceConfig::Strava(settings) => Arc::new(StravaSource::new(cache.clone(), settings, state, clock, client)),
        SourceConfig::Justgiving { app_id, page_short_name, base_url } => {
            let conditional = Conditional::new(cache, state);
            let page = JustGivingPage::new(app_id, page_short_name, base_url);
            Arc::new(JustGivingSource::new(page, clock, client, conditional))
        }
        SourceConfig::Http { url, headers, bearer_token } => {
            let endpoint = HttpEndpoint { url, headers, bearer_token };
            Arc::new(HttpSource::new(endpoint, clock, client, Conditional::new(cache, state)))
        }
        SourceConfig::Command { argv, timeout } => Arc::new(CommandSource::new(argv, timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::MemoryState;
    use super::*;

    fn all() -> Vec<SourceConfig> {
        vec![
            SourceConfig::Strava(strava::Settings {
                client_id: "12345".into(),
                client_secret: "SECRET-cs".into(),
                refresh_token: "SECRET-rt".into(),
                refresh_token_file: Some("/var/lib/tiercache/strava_token".into()),
                base_url: STRAVA_BASE_URL.into(),
                per_page: 200,
                full_refresh_every: Duration::from_secs(86400),
                learn_athlete: false,
            }),
            SourceConfig::Justgiving {
                app_id: "SECRET-app".into(),
                page_short_name: "my-page".into(),
                base_url: JUSTGIVING_BASE_URL.into(),
            },
            SourceConfig::Http {
                url: "https://user:SECRET@example.com/path/SECRET?key=SECRET".into(),
                headers: BTreeMap::from([("X-Api-Key".into(), "SECRET-header".into())]),
                bearer_token: Some("SECRET-bearer".into()),
            },
            SourceConfig::Command {
                argv: vec!["/usr/bin/fetch".into(), "--token=SECRET".into()],
                timeout: Duration::from_secs(30),
            },
        ]
    }

    #[test]
    fn debug_redacts_every_secret() {
        for config in all() {
            let shown = format!("{config:?} {config:#?}");
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        let shown = format!("{:?}", all());
        assert!(shown.contains("12345") && shown.contains("my-page") && shown.contains("X-Api-Key"), "{shown}");
        assert!(shown.contains("https://example.com") && shown.contains("/usr/bin/fetch"), "{shown}");
    }

    #[test]
    fn builds_each_kind() {
        let cache = CacheName::parse("strava").unwrap();
        let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
        let kinds: Vec<_> = all().into_iter().map(|c| (c.kind(), build(&cache, c, state.clone()).kind())).collect();
        assert!(kinds.iter().all(|(want, got)| want == got), "{kinds:?}");
    }
}
