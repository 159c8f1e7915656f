//! Duration and size strings: the two kinds of value the appendix writes as text.
//!
//! Parsing lives here, once, so the file, the legacy variables and the
//! `TIERCACHE__` overrides all accept and refuse exactly the same spellings.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Parses a humantime duration such as `"15m"`, `"6h"`, `"500ms"` or `"0s"`.
///
/// humantime itself accepts `"6 hours"`; we refuse a space between a number and its
/// unit (docs/config.md names `"6 hours"` as a bad duration): a single spelling keeps
/// configs greppable.
///
/// # Errors
/// The problem text `invalid duration "<value>"`, followed by the expected form.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || invalid_duration(s);
    let bytes = s.as_bytes();
    let spaced_unit = bytes.windows(2).enumerate().any(|(i, w)| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_whitespace()
            && bytes[i + 1..].iter().find(|b| !b.is_ascii_whitespace()).is_some_and(u8::is_ascii_alphabetic)
    });
    if spaced_unit {
        return Err(invalid());
    }
    humantime::parse_duration(s).map_err(|_| invalid())
}

/// `invalid duration "VALUE"` and the form expected, for every duration of the
/// configuration (the environment's included).
pub(crate) fn invalid_duration(s: &str) -> String {
    format!("invalid duration {s:?} {DURATION_FORM}")
}

/// What a duration looks like, after the value refused.
const DURATION_FORM: &str = r#"(expected a number and a unit with no space between: "15m", "6h", "500ms", "1h30m")"#;

/// Formats a duration so that [`parse_duration`] reads it back unchanged, in one
/// unit where possible and in the appendix's own spelling (`"60s"`, `"5m"`, `"24h"`).
pub(super) fn format_duration(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs <= 60 || !secs.is_multiple_of(60) {
        return format!("{secs}s");
    }
    let mins = secs / 60;
    if !mins.is_multiple_of(60) {
        return format!("{mins}m");
    }
    format!("{}h", mins / 60)
}

/// Units of a size, longest spelling first so `"kib"` is not read as `"b"`.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("b", 1),
];

/// Parses a byte size such as `"16MiB"`, `"512 KB"` or a bare byte count `"1048576"`.
///
/// Units are case-insensitive; `KB` is 1000 and `KiB` is 1024, as their names say.
///
/// # Errors
/// The problem text `invalid size "<value>"`.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {s:?}");
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, rest) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid());
    }
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let factor = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS.iter().find(|(name, _)| *name == unit).map(|(_, f)| *f).ok_or_else(invalid)?
    };
    number.checked_mul(factor).ok_or_else(invalid)
}

/// Formats a size with the largest binary unit that divides it exactly.
pub(super) fn format_size(bytes: u64) -> String {
    for (name, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes != 0 && bytes.is_multiple_of(factor) {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// A duration key of the raw config, checked while deserializing so the error
/// carries the key's path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// Written back as the file writes it (`check-config`).
impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The config crate turns numbers into strings here, so `ttl = 300` is refused
        // as `invalid duration "300"` rather than read with a guessed unit.
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// An optional duration: the appendix writes "not set" as `""`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OptDur(pub Option<Duration>);

impl fmt::Debug for OptDur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => f.write_str(&format_duration(d)),
            None => f.write_str("unset"),
        }
    }
}

/// Written back as the file writes it: `""` when unset.
impl Serialize for OptDur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.map(format_duration).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for OptDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(OptDur(None));
        }
        parse_duration(&s).map(|d| OptDur(Some(d))).map_err(de::Error::custom)
    }
}

/// A size key of the raw config; a TOML integer is a byte count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub u64);

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

/// Written back as the file writes it (`check-config`).
impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_size(&s).map(Size).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accepted() {
        for (s, secs) in [("15m", 900), ("6h", 21_600), ("0s", 0), ("0", 0), ("1h 30m", 5400)] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn durations_refused() {
        assert_eq!(
            parse_duration("6 hours").unwrap_err(),
            r#"invalid duration "6 hours" (expected a number and a unit with no space between: "15m", "6h", "500ms", "1h30m")"#
        );
        for s in ["", "5 m", "6", "abc", "-1s", "1h 30 m", "300"] {
            assert!(parse_duration(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn durations_format_like_the_appendix() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1500, "1500ms"),
            (60_000, "60s"),
            (90_000, "90s"),
            (300_000, "5m"),
            (5_400_000, "90m"),
            (86_400_000, "24h"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn durations_round_trip() {
        for d in [0, 1, 500, 1_000_000, 90_000_000_000, 5_400_500_000_000, 3_456_000_000_000_000, 3_600_000_000_001] {
            let d = Duration::from_nanos(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16 mib"), Ok(16 << 20));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for s in ["", "MiB", "16  MiB", "16 XB", "1.5MiB", "-1", "99999999999999999999"] {
            assert!(parse_size(s).is_err(), "{s:?}");
        }
        assert_eq!(parse_size("x").unwrap_err(), r#"invalid size "x""#);
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(2048), "2KiB");
        assert_eq!(format_size(0), "0B");
        for n in [0, 1, 1000, 1024, 16 << 20, 5 << 30, 123_456_789] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
}
