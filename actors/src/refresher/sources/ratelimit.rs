//! Strava's rate-limit budget, read from response headers and never hard-coded.
//!
//! Strava sends `X-RateLimit-Limit: 200,2000` and `X-RateLimit-Usage: 12,150` (the
//! 15-minute window, then the daily one), and the same pair for reads as
//! `X-ReadRateLimit-*`. The 15-minute windows reset at :00, :15, :30 and :45 UTC, the
//! daily ones at midnight UTC, so a reading is only trusted until its window resets.

use super::client::Headers;
use super::RateLimit;
use chrono::{DateTime, Duration, DurationRound, Utc};
use std::collections::BTreeMap;

/// One of the four budget windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// All requests, 15 minutes.
    Overall15m,
    /// All requests, per UTC day.
    OverallDaily,
    /// Read requests, 15 minutes.
    Read15m,
    /// Read requests, per UTC day.
    ReadDaily,
}

impl Window {
    /// The name used in [`RateLimit::window`] and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Overall15m => "15m",
            Self::OverallDaily => "daily",
            Self::Read15m => "read_15m",
            Self::ReadDaily => "read_daily",
        }
    }

    /// When this window next resets, strictly after `now`.
    pub fn next_reset(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Overall15m | Self::Read15m => next_quarter_hour(now),
            Self::OverallDaily | Self::ReadDaily => next_midnight(now),
        }
    }
}

/// The next :00, :15, :30 or :45 strictly after `now`.
pub fn next_quarter_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    next_multiple(now, Duration::minutes(15))
}

/// The next midnight UTC strictly after `now`.
pub fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    next_multiple(now, Duration::days(1))
}

fn next_multiple(now: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    // Truncation is relative to the Unix epoch, which is a midnight UTC.
    now.duration_trunc(step).map_or(now + step, |start| start + step)
}

/// One window's limit and usage as a response reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Which window.
    pub window: Window,
    /// Requests allowed in the window.
    pub limit: i64,
    /// Requests used so far in the window.
    pub usage: i64,
}

impl Reading {
    /// Requests left (never negative: Strava's usage can pass the limit).
    pub fn remaining(&self) -> i64 {
        (self.limit - self.usage).max(0)
    }
}

/// Every reading in a response's headers; headers that are missing or malformed are skipped.
pub fn parse(headers: &Headers) -> Vec<Reading> {
    let mut out = Vec::with_capacity(4);
    let pairs = [
        ("x-ratelimit-limit", "x-ratelimit-usage", Window::Overall15m, Window::OverallDaily),
        ("x-readratelimit-limit", "x-readratelimit-usage", Window::Read15m, Window::ReadDaily),
    ];
    for (limit, usage, short, daily) in pairs {
        let (Some(limit), Some(usage)) = (headers.get(limit), headers.get(usage)) else { continue };
        let mut limits = limit.split(',').map(|v| v.trim().parse::<i64>().ok());
        let mut usages = usage.split(',').map(|v| v.trim().parse::<i64>().ok());
        for window in [short, daily] {
            if let (Some(Some(limit)), Some(Some(usage))) = (limits.next(), usages.next()) {
                out.push(Reading { window, limit, usage });
            }
        }
    }
    out
}

/// When to call again after a 429: the reset of the spent window that resets last, or
/// the next quarter hour when the headers do not say which window is spent.
pub fn limited_until(readings: &[Reading], now: DateTime<Utc>) -> DateTime<Utc> {
    readings
        .iter()
        .filter(|r| r.remaining() == 0)
        .map(|r| r.window.next_reset(now))
        .max()
        .unwrap_or_else(|| next_quarter_hour(now))
}

/// The part of each window that pushed work (webhook events) may spend: a quarter of
/// what is left, so that a flood of events, forged or not, leaves the rest for the
/// scheduled and on-demand refreshes.
pub const PUSHED_SHARE_DIVISOR: i64 = 4;

impl Window {
    const ALL: [Window; 4] = [Window::Overall15m, Window::OverallDaily, Window::Read15m, Window::ReadDaily];

    /// Strava's default limits for an application, assumed until a response says.
    fn assumed_limit(self) -> i64 {
        match self {
            Self::Overall15m => 200,
            Self::OverallDaily => 2000,
            Self::Read15m => 100,
            Self::ReadDaily => 1000,
        }
    }
}

/// What the source knows of its budget between calls. Strava's limits are per
/// application, so every strava source of one application shares one `Budget`.
#[derive(Debug, Default)]
pub struct Budget {
    /// The latest reading per window and when that window resets.
    readings: BTreeMap<Window, (Reading, DateTime<Utc>)>,
    /// Set by a 429: no call before this.
    blocked_until: Option<DateTime<Utc>>,
    /// Calls made for pushed work per window, and when that window resets.
    pushed: BTreeMap<Window, (i64, DateTime<Utc>)>,
}

impl Budget {
    /// Records the readings of a response received at `now`.
    pub fn observe(&mut self, readings: &[Reading], now: DateTime<Utc>) {
        for r in readings {
            self.readings.insert(r.window, (*r, r.window.next_reset(now)));
        }
    }

    /// Records a 429 received at `now`; returns when to call again.
    pub fn rejected(&mut self, readings: &[Reading], now: DateTime<Utc>) -> DateTime<Utc> {
        self.observe(readings, now);
        let until = limited_until(readings, now);
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
        until
    }

    /// Readings still valid at `now` (their window has not reset since).
    fn current(&self, now: DateTime<Utc>) -> impl Iterator<Item = (&Reading, DateTime<Utc>)> {
        self.readings.values().filter(move |(_, reset)| *reset > now).map(|(r, reset)| (r, *reset))
    }

    /// `Err(until)` when a call now would exceed the budget, so the call is not made.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let spent = self.current(now).filter(|(r, _)| r.remaining() == 0).map(|(_, reset)| reset);
        let blocked = self.blocked_until.filter(|b| *b > now);
        match spent.chain(blocked).max() {
            Some(until) => Err(until),
            None => Ok(()),
        }
    }

    /// `Err(until)` when a call for pushed work now would pass the share of the budget
    /// reserved for it (a quarter of what is left in each window; Strava's default
    /// limits while no response has said otherwise), or any call would.
    pub fn check_pushed(&self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        self.check(now)?;
        let spent_in = |w: Window| self.pushed.get(&w).filter(|(_, reset)| *reset > now).map_or(0, |(n, _)| *n);
        let over = Window::ALL.into_iter().filter(|w| {
            let spent = spent_in(*w);
            let left = match self.readings.get(w).filter(|(_, reset)| *reset > now) {
                Some((r, _)) => r.remaining() + spent,
                None => w.assumed_limit(),
            };
            spent >= left / PUSHED_SHARE_DIVISOR
        });
        match over.map(|w| w.next_reset(now)).max() {
            Some(until) => Err(until),
            None => Ok(()),
        }
    }

    /// Counts a call made for pushed work at `now` against its share.
    pub fn record_pushed(&mut self, now: DateTime<Utc>) {
        for w in Window::ALL {
            let entry = self.pushed.entry(w).or_insert((0, w.next_reset(now)));
            if entry.1 <= now {
                *entry = (0, w.next_reset(now));
            }
            entry.0 += 1;
        }
    }

    /// How many more calls fit while keeping a tenth of every limit in reserve (for the
    /// next regular refresh and other clients of the same app); `None` when unknown.
    pub fn spare(&self, now: DateTime<Utc>) -> Option<i64> {
        self.current(now).map(|(r, _)| (r.remaining() - (r.limit.max(0) + 9) / 10).max(0)).min()
    }

    /// The latest reading per window, as the refresher reports them.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Vec<RateLimit> {
        self.current(now).map(|(r, _)| RateLimit { window: r.window.name(), remaining: r.remaining() }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn windows_reset_on_the_quarter_hour_and_at_midnight() {
        assert_eq!(next_quarter_hour(t("2024-05-01T10:07:13Z")), t("2024-05-01T10:15:00Z"));
        assert_eq!(next_quarter_hour(t("2024-05-01T10:15:00Z")), t("2024-05-01T10:30:00Z"));
        assert_eq!(next_quarter_hour(t("2024-05-01T23:59:59.5Z")), t("2024-05-02T00:00:00Z"));
        assert_eq!(next_midnight(t("2024-05-01T10:07:13Z")), t("2024-05-02T00:00:00Z"));
        assert_eq!(next_midnight(t("2024-05-02T00:00:00Z")), t("2024-05-03T00:00:00Z"));
    }

    #[test]
    fn parses_both_header_pairs() {
        let h = headers(&[
            ("X-RateLimit-Limit", "200,2000"),
            ("X-RateLimit-Usage", "12,150"),
            ("X-ReadRateLimit-Limit", "100, 1000"),
            ("X-ReadRateLimit-Usage", "100,bogus"),
        ]);
        let readings = parse(&h);
        let remaining: Vec<_> = readings.iter().map(|r| (r.window.name(), r.remaining())).collect();
        assert_eq!(remaining, [("15m", 188), ("daily", 1850), ("read_15m", 0)]);
        assert!(parse(&headers(&[("X-RateLimit-Limit", "200,2000")])).is_empty());
    }

    #[test]
    fn a_429_waits_for_the_spent_window() {
        let now = t("2024-05-01T10:07:13Z");
        assert_eq!(limited_until(&[], now), t("2024-05-01T10:15:00Z"));
        let daily_spent = [
            Reading { window: Window::Overall15m, limit: 200, usage: 20 },
            Reading { window: Window::OverallDaily, limit: 2000, usage: 2000 },
        ];
        assert_eq!(limited_until(&daily_spent, now), t("2024-05-02T00:00:00Z"));
    }

    #[test]
    fn a_spent_window_blocks_until_it_resets() {
        let now = t("2024-05-01T10:07:13Z");
        let mut budget = Budget::default();
        assert_eq!(budget.check(now), Ok(()));
        assert_eq!(budget.spare(now), None);
        budget.observe(&[Reading { window: Window::Read15m, limit: 100, usage: 100 }], now);
        assert_eq!(budget.check(now), Err(t("2024-05-01T10:15:00Z")));
        assert_eq!(budget.check(t("2024-05-01T10:15:00Z")), Ok(()), "the window has reset");
        budget.observe(&[Reading { window: Window::ReadDaily, limit: 1000, usage: 500 }], now);
        assert_eq!(budget.spare(t("2024-05-01T10:20:00Z")), Some(400));
        assert_eq!(budget.snapshot(now).len(), 2);
    }

    #[test]
    fn pushed_work_spends_at_most_a_quarter_of_what_is_left() {
        let now = t("2024-05-01T10:07:13Z");
        let mut budget = Budget::default();
        // Nothing known: a quarter of Strava's default read window (100).
        let mut calls = 0;
        while budget.check_pushed(now).is_ok() {
            budget.record_pushed(now);
            calls += 1;
        }
        assert_eq!(calls, 25);
        assert_eq!(budget.check_pushed(now), Err(t("2024-05-01T10:15:00Z")));
        assert_eq!(budget.check(now), Ok(()), "the rest stays for scheduled refreshes");
        assert_eq!(budget.check_pushed(t("2024-05-01T10:15:00Z")), Ok(()), "a new window");

        // A reading: 40 left in the read window, so 10 pushed calls.
        let mut budget = Budget::default();
        budget.observe(&[Reading { window: Window::Read15m, limit: 100, usage: 60 }], now);
        let mut calls = 0;
        while budget.check_pushed(now).is_ok() {
            budget.record_pushed(now);
            // Each pushed call shows in the next reading too.
            budget.observe(&[Reading { window: Window::Read15m, limit: 100, usage: 61 + calls }], now);
            calls += 1;
        }
        assert_eq!(calls, 10);
    }

    #[test]
    fn a_bare_429_blocks_until_the_next_quarter_hour() {
        let now = t("2024-05-01T10:07:13Z");
        let mut budget = Budget::default();
        assert_eq!(budget.rejected(&[], now), t("2024-05-01T10:15:00Z"));
        assert_eq!(budget.check(now + Duration::minutes(1)), Err(t("2024-05-01T10:15:00Z")));
        assert_eq!(budget.check(t("2024-05-01T10:15:00Z")), Ok(()));
    }
}
