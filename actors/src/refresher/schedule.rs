//! When a cache is due: pure functions of its times, so tests need no clock.

use crate::domain::CacheName;
use chrono::{DateTime, Utc};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Which fetch is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The plain fetch.
    Normal,
    /// The fuller, expensive fetch (also counts as a plain one).
    Rich,
}

fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The next due time and kind, or `None` when the cache has no schedule.
///
/// A cache never fetched is due at once (`min`), so overdue caches refresh at startup.
pub fn due_at(
    last_fetch: Option<DateTime<Utc>>,
    last_rich_fetch: Option<DateTime<Utc>>,
    every: Option<Duration>,
    rich_every: Option<Duration>,
    jitter: Duration,
    retry_at: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, Due)> {
    let normal = every.map(|e| last_fetch.map_or(DateTime::<Utc>::MIN_UTC, |t| plus(plus(t, e), jitter)));
    let rich = rich_every.map(|e| last_rich_fetch.map_or(DateTime::<Utc>::MIN_UTC, |t| plus(plus(t, e), jitter)));
    let (at, kind) = match (normal, rich) {
        (Some(n), Some(r)) if r <= n => (r, Due::Rich),
        (Some(n), _) => (n, Due::Normal),
        (None, Some(r)) => (r, Due::Rich),
        (None, None) => return None,
    };
    Some((retry_at.map_or(at, |r| at.max(r)), kind))
}

/// A fixed offset in `[0, max]` per cache: spreads caches apart without moving a
/// cache's due time from one tick to the next.
pub fn jitter_for(name: &CacheName, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let fraction = (h.finish() % 10_000) as f64 / 10_000.0;
    max.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn never_fetched_is_due_now_and_schedules_follow_last_fetch() {
        let every = Some(Duration::from_secs(60));
        assert_eq!(due_at(None, None, every, None, Duration::ZERO, None).unwrap().0, DateTime::<Utc>::MIN_UTC);
        assert_eq!(due_at(Some(t(0)), None, every, None, Duration::ZERO, None), Some((t(60), Due::Normal)));
        assert_eq!(due_at(Some(t(0)), None, None, None, Duration::ZERO, None), None);
    }

    #[test]
    fn rich_wins_when_due_first_and_retry_delays() {
        let (every, rich) = (Some(Duration::from_secs(60)), Some(Duration::from_secs(100)));
        assert_eq!(due_at(Some(t(50)), Some(t(0)), every, rich, Duration::ZERO, None), Some((t(100), Due::Rich)));
        assert_eq!(due_at(Some(t(0)), Some(t(0)), every, rich, Duration::ZERO, None), Some((t(60), Due::Normal)));
        assert_eq!(due_at(Some(t(0)), None, every, None, Duration::ZERO, Some(t(90))), Some((t(90), Due::Normal)));
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let n = CacheName::parse("strava").unwrap();
        let j = jitter_for(&n, Duration::from_secs(10));
        assert_eq!(j, jitter_for(&n, Duration::from_secs(10)));
        assert!(j <= Duration::from_secs(10));
        assert_eq!(jitter_for(&n, Duration::ZERO), Duration::ZERO);
    }
}
