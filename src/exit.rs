//! Exit codes (docs/operations.md) and the one-line error that goes with a non-zero exit.

use std::fmt;

/// A clean stop.
pub(crate) const OK: i32 = 0;
/// Bad command-line usage (EX_USAGE).
pub(crate) const USAGE: i32 = 64;
/// The supervisor gave up: the restart limit was hit (EX_SOFTWARE).
pub(crate) const SOFTWARE: i32 = 70;
/// Data directory not writable or locked by another instance (EX_CANTCREAT).
pub(crate) const CANTCREAT: i32 = 73;
/// Bad configuration (EX_CONFIG).
pub(crate) const CONFIG: i32 = 78;
/// Anything else that stops a command (EX_UNAVAILABLE).
pub(crate) const UNAVAILABLE: i32 = 69;
/// Try again later: `migrate` gave up waiting for locks other sessions hold
/// (EX_TEMPFAIL).
pub(crate) const TEMPFAIL: i32 = 75;

/// A reason to exit non-zero, printed as one line on stderr.
#[derive(Debug)]
pub(crate) struct Fatal {
    /// The process exit code.
    pub code: i32,
    /// The line to print.
    pub message: String,
}

impl Fatal {
    /// A fatal error with `code`.
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A TCP listener that could not be opened. An address another socket holds, or a
/// port this user may not open, is a fact of the host, not a configuration mistake:
/// exit 69 with `cannot listen on ADDR: ...`. Anything else (an address this host does
/// not have) is the configuration's: `config error: api.listen[i]: cannot listen ...`;
/// so is an address an earlier entry of `api.listen` already covers (`earlier`: its
/// index and text), which the same bind error reports. The line quotes what the bind
/// returned and never guesses who holds the address.
pub(crate) fn cannot_listen(index: usize, addr: &str, e: &std::io::Error, earlier: Option<(usize, &str)>) -> Fatal {
    use std::io::ErrorKind::{AddrInUse, PermissionDenied};
    match (e.kind(), earlier) {
        (AddrInUse, Some((j, other))) => Fatal::new(
            CONFIG,
            format!(
                "config error: api.listen[{index}]: cannot listen on {addr}: api.listen[{j}] (\"{other}\") \
                 already listens on this port and address (the bind answered: {e})"
            ),
        ),
        (AddrInUse, None) => Fatal::new(
            UNAVAILABLE,
            format!(
                "cannot listen on {addr}: the bind answered \"{e}\": another socket is bound to this address \
                 (`ss -ltnp 'sport = :{port}'` shows a process listening there, if any)",
                port = addr.rsplit(':').next().unwrap_or(addr)
            ),
        ),
        (PermissionDenied, _) => Fatal::new(UNAVAILABLE, format!("cannot listen on {addr}: not permitted: {e}")),
        _ => Fatal::new(CONFIG, format!("config error: api.listen[{index}]: cannot listen on {addr}: {e}")),
    }
}

impl From<crate::config::ConfigError> for Fatal {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::new(CONFIG, e.to_string())
    }
}

/// Each boot failure with its own exit code: the configuration's (78, naming the key)
/// or the host's (69). The message is the error's own line.
impl From<tiercache_actors::runtime::BootError> for Fatal {
    fn from(e: tiercache_actors::runtime::BootError) -> Self {
        use tiercache_actors::runtime::BootError::{FileTier, Postgres, TransactionPooler};
        let code = match &e {
            Postgres { .. } | TransactionPooler { .. } => CONFIG,
            FileTier(_) => UNAVAILABLE,
        };
        Self::new(code, e.to_string())
    }
}
