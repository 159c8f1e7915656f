//! `[api]`, the one place of the config layer that knows its keys: the type the HTTP
//! server is built from, the file's form and its defaults, its checks, what
//! `check-config` prints, what a reload compares and how it treats each key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::durations::Size;
use super::paths::PathBase;
use super::raw::{non_empty, StringList, DEFAULT_SIZE};
use super::{net, ConfigError, ListenAddr, Located};
use crate::reload::table::{
    Reload::{self, Applied, AppliedUnlessToggled, Restart},
    API_POLICY,
};

/// `[api]`.
#[derive(Debug, Clone)]
pub(crate) struct ApiSettings {
    pub listen: Vec<ListenAddr>,
    /// Largest accepted request body, in bytes.
    pub max_body: u64,
    /// Lines `scope:token`; `None` means no authentication. Where it was looked for is
    /// kept for the error lines of the daemon and of `status`.
    pub tokens_file: Option<Located>,
    /// Lets a TCP listener beyond loopback run without `tokens_file` (checked: off,
    /// such a listener is a configuration error).
    pub allow_unauthenticated: bool,
    /// Validated CIDRs or bare IPs, as written; empty means all clients.
    pub allow: Vec<String>,
    /// Per client address; 0 turns rate limiting off.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// HTTP worker threads (`api.workers`; 0 in the file is resolved to a few per core).
    pub workers: usize,
    /// Both or neither (checked): both set means HTTPS on TCP listeners.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The section as written; also what `check-config` prints of it (`workers` as
/// resolved).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawApi {
    listen: StringList,
    max_body: Size,
    tokens_file: String,
    allow_unauthenticated: bool,
    allow: StringList,
    rate_limit_per_second: u32,
    rate_limit_burst: u32,
    workers: usize,
    tls_cert: String,
    tls_key: String,
}

impl Default for RawApi {
    /// The defaults live here rather than on [`ApiSettings`]: `workers = 0` means "a
    /// few per core", resolved by [`RawApi::check`].
    fn default() -> Self {
        Self {
            listen: StringList(vec!["127.0.0.1:8077".into()]),
            max_body: Size(DEFAULT_SIZE),
            tokens_file: String::new(),
            allow_unauthenticated: false,
            allow: StringList(Vec::new()),
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
            workers: 0,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl From<&ApiSettings> for RawApi {
    fn from(s: &ApiSettings) -> Self {
        let ApiSettings {
            listen,
            max_body,
            tokens_file,
            allow_unauthenticated,
            allow,
            rate_limit_per_second,
            rate_limit_burst,
            workers,
            tls_cert,
            tls_key,
        } = s;
        let path = |p: Option<&std::path::Path>| p.map(|p| p.display().to_string()).unwrap_or_default();
        Self {
            listen: StringList(listen.iter().map(ToString::to_string).collect()),
            max_body: Size(*max_body),
            tokens_file: path(tokens_file.as_ref().map(|l| l.path.as_path())),
            allow_unauthenticated: *allow_unauthenticated,
            allow: StringList(allow.clone()),
            rate_limit_per_second: *rate_limit_per_second,
            rate_limit_burst: *rate_limit_burst,
            workers: *workers,
            tls_cert: path(tls_cert.as_deref()),
            tls_key: path(tls_key.as_deref()),
        }
    }
}

/// The most `api.workers` accepted: each is a thread with its own event loop.
const MAX_WORKERS: usize = 256;

/// HTTP workers per CPU core when `api.workers` is 0. One per core (actix's default) left
/// the 99th percentile of small reads above nginx's under saturation: a worker busy with
/// one connection's burst holds up every other connection it owns, and with a few per
/// core the kernel's scheduler spreads that wait (measured in docs/performance.md).
const WORKERS_PER_CORE: usize = 4;

fn auto_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) * WORKERS_PER_CORE
}

impl RawApi {
    /// At least one listener, each parsed; a body limit above 0; at most
    /// [`MAX_WORKERS`]; CIDRs that parse; both TLS files or neither. Whether a
    /// listener beyond loopback has tokens is `exposure`'s check, on the whole.
    pub(super) fn check(self, base: &PathBase<'_>) -> Result<ApiSettings, ConfigError> {
        if self.listen.0.is_empty() {
            return Err(ConfigError::new("api.listen", "needs at least one address (HOST:PORT or unix:PATH)"));
        }
        let listen = self
            .listen
            .0
            .iter()
            .enumerate()
            .map(|(i, entry)| net::parse_listen(entry).map_err(|p| ConfigError::new(format!("api.listen[{i}]"), p)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_body.0 == 0 {
            return Err(ConfigError::new("api.max_body", "must be more than 0"));
        }
        if self.workers > MAX_WORKERS {
            return Err(ConfigError::new("api.workers", format!("must be at most {MAX_WORKERS} (0: automatic)")));
        }
        for (i, entry) in self.allow.0.iter().enumerate() {
            net::check_cidr(entry).map_err(|p| ConfigError::new(format!("api.allow[{i}]"), p))?;
        }
        // Credential files may come from systemd's LoadCredential= like the secrets.
        let path = |key: &str, s: String| non_empty(s).map(|s| base.locate(key, true, &s));
        let tls_cert = path("api.tls_cert", self.tls_cert).map(|l| l.path);
        let tls_key = path("api.tls_key", self.tls_key).map(|l| l.path);
        match (&tls_cert, &tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::new("api.tls_key", "must be set when api.tls_cert is (HTTPS needs both)"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("api.tls_cert", "must be set when api.tls_key is (HTTPS needs both)"))
            }
            _ => {}
        }
        Ok(ApiSettings {
            listen,
            max_body: self.max_body.0,
            tokens_file: path("api.tokens_file", self.tokens_file),
            allow_unauthenticated: self.allow_unauthenticated,
            allow: self.allow.0,
            rate_limit_per_second: self.rate_limit_per_second,
            rate_limit_burst: self.rate_limit_burst,
            workers: if self.workers == 0 { auto_workers() } else { self.workers },
            tls_cert,
            tls_key,
        })
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(api: &ApiSettings) -> [(&'static str, String); 10] {
    let ApiSettings {
        listen,
        max_body,
        tokens_file,
        allow_unauthenticated,
        allow,
        rate_limit_per_second,
        rate_limit_burst,
        workers,
        tls_cert,
        tls_key,
    } = api;
    let tokens_file = tokens_file.as_ref().map(|l| &l.path);
    [
        ("api.listen", format!("{listen:?}")),
        ("api.max_body", format!("{max_body:?}")),
        ("api.tokens_file", format!("{tokens_file:?}")),
        ("api.allow_unauthenticated", format!("{allow_unauthenticated:?}")),
        ("api.allow", format!("{allow:?}")),
        ("api.rate_limit_per_second", format!("{rate_limit_per_second:?}")),
        ("api.rate_limit_burst", format!("{rate_limit_burst:?}")),
        ("api.workers", format!("{workers:?}")),
        ("api.tls_cert", format!("{tls_cert:?}")),
        ("api.tls_key", format!("{tls_key:?}")),
    ]
}

const SECURITY: &str = "the API's security policy";
const TLS: &str = "the TLS listeners (new handshakes)";

/// How a reload treats each key: the listeners and their workers stay as bound.
pub(crate) const RELOAD: &[(&str, Reload)] = &[
    ("api.listen", Restart),
    ("api.max_body", Applied(API_POLICY)),
    ("api.tokens_file", Applied(SECURITY)),
    ("api.allow_unauthenticated", Applied("the configuration check (an exposed listener without tokens is refused)")),
    ("api.allow", Applied(SECURITY)),
    ("api.rate_limit_per_second", Applied(SECURITY)),
    ("api.rate_limit_burst", Applied(SECURITY)),
    ("api.workers", Restart),
    ("api.tls_cert", AppliedUnlessToggled(TLS)),
    ("api.tls_key", AppliedUnlessToggled(TLS)),
];
