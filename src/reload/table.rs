//! How SIGHUP treats each configuration key: applied at once (and by whom), or logged
//! as needing a restart. docs/config.md shows the same table to operators.
//!
//! Keys are written as in the configuration file; keys of one `[[caches]]` entry as
//! `caches.KEY` and those of its source as `caches.source.KEY`. A key missing here is
//! treated as needing a restart, and the unit tests fail.

/// What a reload does with a changed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reload {
    /// Takes effect at once; the text says where.
    Applied(&'static str),
    /// Takes effect at the next restart (logged by name).
    Restart,
    /// Applied while the key stays set (or unset); turning it on or off needs a restart.
    AppliedUnlessToggled(&'static str),
}

use Reload::{Applied, Restart};

pub(crate) const API_POLICY: &str = "the API (per request)";
const REFRESHER: &str = "the refresher";
const SOURCES: &str = "the refresher (a new source client; secret files are read again)";

/// The top-level keys.
const TOP: &[(&str, Reload)] = &[("project", Restart), ("data_dir", Restart)];

/// The keys of `[[caches]]` and their sources. Each section's keys are in its file under
/// `config/` (`RELOAD`).
const CACHES: &[(&str, Reload)] = &[
    ("caches", Applied("the API, the refresher, the retry queue and the retention purge (caches added or removed)")),
    (
        "caches.name",
        Applied("the API, the refresher, the retry queue and the retention purge (caches added or removed)"),
    ),
    ("caches.refresh_every", Applied("the refresher and the API's staleness")),
    ("caches.rich_refresh_every", Applied(REFRESHER)),
    ("caches.max_size", Applied("the API and the refresher")),
    ("caches.retention_days", Applied("the retention purge and the rows written from now on")),
    ("caches.schema", Applied("the API, loads from files and Postgres, and the refresher")),
    ("caches.source.kind", Applied(SOURCES)),
    ("caches.source.client_id", Applied(SOURCES)),
    ("caches.source.client_secret", Applied(SOURCES)),
    ("caches.source.client_secret_file", Applied(SOURCES)),
    ("caches.source.refresh_token", Applied(SOURCES)),
    ("caches.source.refresh_token_file", Applied(SOURCES)),
    ("caches.source.base_url", Applied(SOURCES)),
    ("caches.source.per_page", Applied(SOURCES)),
    ("caches.source.full_refresh_every", Applied(SOURCES)),
    ("caches.source.app_id", Applied(SOURCES)),
    ("caches.source.app_id_file", Applied(SOURCES)),
    ("caches.source.page_short_name", Applied(SOURCES)),
    ("caches.source.url", Applied(SOURCES)),
    ("caches.source.headers", Applied(SOURCES)),
    ("caches.source.bearer_token", Applied(SOURCES)),
    ("caches.source.bearer_token_file", Applied(SOURCES)),
    ("caches.source.argv", Applied(SOURCES)),
    ("caches.source.timeout", Applied(SOURCES)),
];

/// How a reload treats `key` (in the table's spelling); `None` for a key the table
/// lacks, which callers treat as needing a restart.
pub(crate) fn rule(key: &str) -> Option<Reload> {
    table().find(|(k, _)| *k == key).map(|(_, r)| r)
}

/// Every key of the configuration and how a reload treats it.
pub(crate) fn table() -> impl Iterator<Item = (&'static str, Reload)> {
    use crate::config::{api, log, memory, postgres, refresh, retry, shutdown, supervisor, webhooks};
    [
        TOP,
        log::RELOAD,
        api::RELOAD,
        memory::RELOAD,
        postgres::RELOAD,
        retry::RELOAD,
        shutdown::RELOAD,
        refresh::RELOAD,
        supervisor::RELOAD,
        webhooks::RELOAD,
        CACHES,
    ]
    .into_iter()
    .flatten()
    .copied()
}
