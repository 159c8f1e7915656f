//! Turning the configuration into a deadpool of tokio-postgres connections: the URL
//! (minus the libpq-only parameters), the password file, `sslmode`, timeouts.

use super::tls::{client_config, TlsError, TlsMode};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the store needs to connect.
#[derive(Clone, PartialEq)]
pub struct ConnectConfig {
    /// `postgres://...`, possibly with `sslmode`/`sslrootcert` parameters.
    pub url: String,
    /// Overrides a password in the URL (`postgres.password_file`, already read).
    pub password: Option<String>,
    /// The rest of `[postgres]`.
    pub options: ConnectOptions,
}

impl ConnectConfig {
    /// Connects to `url` with its own password (if any) and the default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), password: None, options: ConnectOptions::default() }
    }
}

/// The non-secret part of `[postgres]`: the daemon's validated settings hold this
/// type too, so these keys are declared once. The URL and the password are not here:
/// the settings keep the URL as a secret and name the password's file, which is read
/// again at each (re)connect.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// `postgres.sslmode`; `None`: the URL's, else by host (docs/config.md).
    pub sslmode: Option<TlsMode>,
    /// `postgres.ssl_root_cert`.
    pub ssl_root_cert: Option<PathBuf>,
    /// `postgres.pool_size`.
    pub pool_size: usize,
    /// `postgres.statement_cache`: false behind a transaction pooler.
    pub statement_cache: bool,
    /// `postgres.connect_timeout`.
    pub connect_timeout: Duration,
    /// `postgres.statement_timeout`.
    pub statement_timeout: Duration,
}

impl Default for ConnectOptions {
    /// The configuration's built-in defaults (docs/config.md): no `sslmode` of its own,
    /// no root certificate, 8 connections, the statement cache on, 5s to connect, 15s
    /// per statement.
    fn default() -> Self {
        Self {
            sslmode: None,
            ssl_root_cert: None,
            pool_size: 8,
            statement_cache: true,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
        }
    }
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig").field("url", &"[redacted]").finish_non_exhaustive()
    }
}

/// Splits libpq-only query parameters (`sslmode`, `sslrootcert`) off a URL, since
/// tokio-postgres rejects `verify-ca` and `verify-full`.
fn split_libpq_params(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None, None) };
    let (mut sslmode, mut root) = (None, None);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some(("sslmode", v)) => {
                sslmode = Some(v.to_owned());
                false
            }
            Some(("sslrootcert", v)) => {
                root = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, sslmode, root)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The driver's configuration and TLS connector, for dedicated connections (LISTEN,
/// advisory locks) that must not come from the pool.
///
/// # Errors
/// A message naming what is wrong with the URL or the TLS settings.
pub fn driver_config(cfg: &ConnectConfig) -> Result<(tokio_postgres::Config, MakeRustlsConnect), PoolError> {
    let (url, url_sslmode, url_root) = split_libpq_params(&cfg.url);
    let url_error = PoolError::Url;
    let mut pg = tokio_postgres::Config::from_str(&url).map_err(|e| url_error(format!("invalid postgres url: {e}")))?;
    if let Some(pw) = &cfg.password {
        pg.password(pw.as_bytes());
    }
    let opts = &cfg.options;
    pg.connect_timeout(opts.connect_timeout);
    pg.application_name("tiercache");
    if opts.statement_cache {
        // Direct and session-pooled connections accept startup options; a transaction
        // pooler may not, so there the client-side timeout alone applies.
        pg.options(format!("-c statement_timeout={}", opts.statement_timeout.as_millis()));
    }
    let unix = matches!(pg.get_hosts().first(), Some(Host::Unix(_)) | None);
    let loopback = matches!(pg.get_hosts().first(), Some(Host::Tcp(h)) if is_loopback(h));
    let explicit = match (&opts.sslmode, url_sslmode) {
        (Some(mode), _) => Some(*mode),
        (None, Some(s)) => {
            Some(TlsMode::parse_url(&s).ok_or_else(|| url_error(format!("invalid sslmode {s:?} in the url")))?)
        }
        (None, None) => None,
    };
    let mode = if unix {
        TlsMode::Disable // TLS does not apply on Unix sockets.
    } else {
        explicit.unwrap_or(if loopback { TlsMode::Prefer } else { TlsMode::Require })
    };
    pg.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let root = opts.ssl_root_cert.clone().or(url_root.map(PathBuf::from));
    let config = client_config(mode, root.as_deref()).map_err(|e| match e {
        // The file `postgres.ssl_root_cert` names; one the URL names is the URL's.
        TlsError::RootCert(reason) if opts.ssl_root_cert.is_some() => PoolError::RootCert(reason),
        other => url_error(other.to_string()),
    })?;
    Ok((pg, MakeRustlsConnect::new(config)))
}

/// Where `cfg` connects, for error lines: `host:port` (or `socket DIR/.s.PGSQL.PORT`)
/// for each host of the URL, never the user or password.
pub fn target(cfg: &ConnectConfig) -> String {
    let (url, _, _) = split_libpq_params(&cfg.url);
    let Ok(pg) = tokio_postgres::Config::from_str(&url) else { return "an unparsable postgres.url".into() };
    let ports = pg.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", port(i)),
            Host::Tcp(h) => format!("{h}:{}", port(i)),
            Host::Unix(dir) => format!("socket {}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        format!("socket /var/run/postgresql/.s.PGSQL.{}", port(0))
    } else {
        hosts.join(", ")
    }
}

/// Why the Postgres settings cannot make a connection: the message, under the
/// configuration key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// `postgres.url`: the URL itself, its `sslmode` or its `sslrootcert`, or the TLS
    /// settings as a whole.
    #[error("{0}")]
    Url(String),
    /// The file `postgres.ssl_root_cert` names cannot be read or holds no usable
    /// certificate.
    #[error("{0}")]
    RootCert(String),
}

impl PoolError {
    /// The configuration key an operator fixes.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Url(_) => "postgres.url",
            Self::RootCert(_) => "postgres.ssl_root_cert",
        }
    }
}

/// A ready pool (connections are made lazily) and the TLS connector for cancels.
/// Also used by `tiercache migrate`, so both connect the same way.
///
/// # Errors
/// [`PoolError`]: what is wrong with the URL or the TLS settings, and which key.
pub fn pool(cfg: &ConnectConfig) -> Result<(Pool, MakeRustlsConnect), PoolError> {
    let (pg, tls) = driver_config(cfg)?;
    let opts = &cfg.options;
    let manager = Manager::from_config(pg, tls.clone(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(opts.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(opts.connect_timeout))
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .build()
        .map_err(|e| PoolError::Url(e.to_string()))?;
    Ok((pool, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_libpq_only_parameters() {
        let (url, mode, root) =
            split_libpq_params("postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem");
        assert_eq!(url, "postgres://u@h/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        assert_eq!(split_libpq_params("postgres://h/db").0, "postgres://h/db");
    }

    #[test]
    fn the_target_names_host_and_port_or_socket_never_the_password() {
        let cfg = ConnectConfig::new;
        assert_eq!(target(&cfg("postgres://u:secret@db.example.com:6543/x?sslmode=require")), "db.example.com:6543");
        assert_eq!(target(&cfg("postgres://u:secret@127.0.0.1/x")), "127.0.0.1:5432");
        assert_eq!(target(&cfg("postgresql:///x?host=/tmp/pg&port=5433")), "socket /tmp/pg/.s.PGSQL.5433");
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("::1"));
        assert!(!is_loopback("db.example.supabase.co"));
    }
}
