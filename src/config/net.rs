//! Listen addresses and CIDRs: the network-shaped strings of `[api]`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// One `api.listen` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// `"HOST:PORT"`, checked to parse as a [`SocketAddr`] (no name lookup at startup).
    Tcp(String),
    /// `"unix:PATH"`, a Unix socket for a reverse proxy on the same host.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => f.write_str(addr),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl ListenAddr {
    /// Whether clients beyond this machine may reach the listener: a TCP address
    /// whose IP is not loopback (`0.0.0.0`, `::`, a LAN address). `unix:` sockets are
    /// local (their file mode is their access control).
    pub(crate) fn is_beyond_loopback(&self) -> bool {
        match self {
            // Parsed at load, so the parse cannot fail; if it ever did, assume exposed.
            ListenAddr::Tcp(addr) => addr.parse::<SocketAddr>().map_or(true, |a| !a.ip().to_canonical().is_loopback()),
            ListenAddr::Unix(_) => false,
        }
    }
}

/// Parses one `api.listen` entry.
///
/// # Errors
/// The problem text, for the caller to attach to the entry's key.
pub(super) fn parse_listen(entry: &str) -> Result<ListenAddr, String> {
    if let Some(path) = entry.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("{entry:?} has no socket path after \"unix:\""));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    entry
        .parse::<SocketAddr>()
        .map(|_| ListenAddr::Tcp(entry.to_owned()))
        .map_err(|_| format!("{entry:?} is neither HOST:PORT (an IP address and a port) nor unix:PATH"))
}

/// Checks one `api.allow` entry: a CIDR such as `"10.0.0.0/8"` or a bare IP address.
///
/// # Errors
/// The problem text, for the caller to attach to the entry's key.
pub(super) fn check_cidr(entry: &str) -> Result<(), String> {
    let invalid = || format!("invalid CIDR {entry:?}");
    let (ip, prefix) = match entry.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (entry, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Some(prefix) = prefix {
        let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        match prefix.parse::<u8>() {
            Ok(len) if digits && len <= max => {}
            _ => return Err(invalid()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_entries() {
        assert_eq!(parse_listen("127.0.0.1:8077"), Ok(ListenAddr::Tcp("127.0.0.1:8077".into())));
        assert_eq!(parse_listen("[::1]:80"), Ok(ListenAddr::Tcp("[::1]:80".into())));
        assert_eq!(parse_listen("unix:/run/tiercache.sock"), Ok(ListenAddr::Unix("/run/tiercache.sock".into())));
        for bad in ["", "unix:", "localhost:8077", "127.0.0.1", "127.0.0.1:99999", ":80"] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn beyond_loopback() {
        for exposed in ["0.0.0.0:80", "[::]:80", "192.168.1.7:80", "10.0.0.1:80", "[fd00::1]:80"] {
            assert!(parse_listen(exposed).unwrap().is_beyond_loopback(), "{exposed}");
        }
        for local in ["127.0.0.1:80", "127.0.0.53:80", "[::1]:80", "[::ffff:127.0.0.1]:80", "unix:/run/t.sock"] {
            assert!(!parse_listen(local).unwrap().is_beyond_loopback(), "{local}");
        }
    }

    #[test]
    fn cidrs() {
        for ok in ["10.0.0.0/8", "::1/128", "192.168.1.7", "::1", "0.0.0.0/0", "fd00::/8"] {
            assert_eq!(check_cidr(ok), Ok(()), "{ok}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "10.0.0.0/+8", "a/8"] {
            assert!(check_cidr(bad).is_err(), "{bad:?}");
        }
    }
}
