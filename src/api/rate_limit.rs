//! The per-client rate limit (`api.rate_limit_per_second`, `api.rate_limit_burst`),
//! with `governor`'s keyed GCRA limiter.
//!
//! Clients are keyed by address: an IPv4 address as it is, an IPv6 address by its
//! /64 (one host usually holds a whole /64, and could otherwise rotate through it).
//! Unix-socket clients (a local reverse proxy) are not limited here: they have no
//! address, and one key for all of them would throttle every user of the proxy.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Forget idle clients every this many checks, so that the table of clients does not
/// grow with every address ever seen.
const SWEEP_EVERY: u64 = 4096;

/// The limiter and the quota it was built from.
pub(crate) struct ClientRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    per_second: u32,
    burst: u32,
    checks: AtomicU64,
}

impl std::fmt::Debug for ClientRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRateLimiter")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl ClientRateLimiter {
    /// A limiter allowing `per_second` requests a second per client with bursts of
    /// `burst` (0: the same as `per_second`); `None` when `per_second` is 0 (off).
    pub(crate) fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            per_second: rate.get(),
            burst: burst.get(),
            checks: AtomicU64::new(0),
        })
    }

    /// Whether this limiter enforces the given settings (a reload keeps a limiter, and
    /// so its clients' state, when they did not change).
    pub(crate) fn same_quota(&self, per_second: u32, burst: u32) -> bool {
        let burst = if burst == 0 { per_second } else { burst };
        self.per_second == per_second && self.burst == burst
    }

    /// Counts one request of `client`: `Err` with how long until the next one would be
    /// accepted.
    ///
    /// # Errors
    /// The wait, when the client is over its quota.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&key(client)).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The key of a client address.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn zero_is_off() {
        assert!(ClientRateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn burst_then_refused_per_client() {
        let limiter = ClientRateLimiter::new(1, 3).unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        }
        let wait = limiter.check(ip("192.0.2.1")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        // Another client has its own budget.
        assert_eq!(limiter.check(ip("192.0.2.2")), Ok(()));
    }

    #[test]
    fn burst_defaults_to_the_rate() {
        let limiter = ClientRateLimiter::new(2, 0).unwrap();
        assert!(limiter.same_quota(2, 0));
        assert!(limiter.same_quota(2, 2));
        assert!(!limiter.same_quota(2, 3));
        assert!(limiter.check(ip("192.0.2.1")).is_ok());
        assert!(limiter.check(ip("192.0.2.1")).is_ok());
        assert!(limiter.check(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limiter = ClientRateLimiter::new(1, 1).unwrap();
        assert!(limiter.check(ip("2001:db8::1")).is_ok());
        assert!(limiter.check(ip("2001:db8::ffff:2")).is_err(), "same /64");
        assert!(limiter.check(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        // IPv4-mapped is the IPv4 client.
        assert!(limiter.check(ip("198.51.100.7")).is_ok());
        assert!(limiter.check(ip("::ffff:198.51.100.7")).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
