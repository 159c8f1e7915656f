//! `api.allow`: the CIDR allow-list of client addresses.
//!
//! Checked on the TCP peer address only (no `X-Forwarded-For`: a header is whatever
//! the client says). Clients of a `unix:` socket have no address and are local: the
//! socket's file mode (0660) is their access control.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parsed `api.allow` entries; empty allows every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses the entries (CIDRs or bare addresses, already checked by the
    /// configuration layer).
    ///
    /// # Errors
    /// The index and text of an entry that does not parse.
    pub(crate) fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let entry = entry.trim();
                let net = match entry.parse::<IpNet>() {
                    Ok(net) => Ok(net),
                    Err(_) => entry.parse::<IpAddr>().map(IpNet::from),
                };
                net.map(|n| n.trunc()).map_err(|_| (i, format!("invalid CIDR {entry:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether the list is empty (every client allowed).
    pub(crate) fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// How many entries the list has.
    pub(crate) fn len(&self) -> usize {
        self.nets.len()
    }

    /// Whether a client may connect: `None` is a unix-socket client (always allowed).
    /// An IPv4 client seen through an IPv6 listener (`::ffff:a.b.c.d`) is matched as
    /// the IPv4 address it is.
    pub(crate) fn permits(&self, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else { return true };
        if self.nets.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn empty_allows_everyone() {
        let all = list(&[]);
        assert!(all.permits(ip("203.0.113.9")));
        assert!(all.permits(ip("::1")));
        assert!(all.permits(None));
    }

    #[test]
    fn cidrs_and_bare_addresses() {
        let l = list(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]);
        assert!(l.permits(ip("10.1.2.3")));
        assert!(l.permits(ip("192.168.1.7")));
        assert!(!l.permits(ip("192.168.1.8")));
        assert!(!l.permits(ip("127.0.0.1")));
        assert!(l.permits(ip("fd12::1")));
        assert!(l.permits(ip("::1")));
        assert!(!l.permits(ip("fe80::1")));
        // Unix-socket clients are local.
        assert!(l.permits(None));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_entries() {
        let l = list(&["127.0.0.1/32"]);
        assert!(l.permits(ip("::ffff:127.0.0.1")));
        assert!(!l.permits(ip("::ffff:127.0.0.2")));
    }

    #[test]
    fn host_bits_are_ignored() {
        assert!(list(&["10.1.2.3/8"]).permits(ip("10.200.0.1")));
    }

    #[test]
    fn bad_entries_are_reported() {
        let err = AllowList::parse(&["10.0.0.0/8".into(), "nope".into()]).unwrap_err();
        assert_eq!(err.0, 1);
    }
}
