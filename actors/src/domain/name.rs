//! Cache names: the only user input that ever reaches a path or a query.

use std::fmt;

/// Longest accepted name; fits `cache_type VARCHAR(50)`.
pub const MAX_NAME_LEN: usize = 50;

/// A validated cache name matching `^[a-z][a-z0-9_-]{0,49}$`.
///
/// Nothing else is ever used to build a file path or a SQL parameter, so the check here
/// is the whole defence against traversal and look-alike names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheName(String);

/// Why a string is not a cache name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The string is empty.
    #[error("a cache name must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error("a cache name is at most {MAX_NAME_LEN} characters")]
    TooLong,
    /// The first character is not `a`-`z`.
    #[error("a cache name starts with a lowercase letter a-z")]
    BadStart,
    /// A character outside `a-z 0-9 _ -`.
    #[error("a cache name holds only a-z, 0-9, '_' and '-'")]
    BadChar,
}

impl CacheName {
    /// Checks `s` against the name pattern.
    ///
    /// # Errors
    /// [`InvalidName`] says which rule `s` breaks.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let bytes = s.as_bytes();
        let first = *bytes.first().ok_or(InvalidName::Empty)?;
        if bytes.len() > MAX_NAME_LEN {
            return Err(InvalidName::TooLong);
        }
        if !first.is_ascii_lowercase() {
            return Err(InvalidName::BadStart);
        }
        let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-';
        if !bytes.iter().all(ok) {
            return Err(InvalidName::BadChar);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for CacheName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CacheName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for CacheName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CacheName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_pattern() {
        for ok in ["a", "strava", "fundraising", "a-b_c9", &"x".repeat(50)] {
            assert!(CacheName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "x".repeat(51);
        for bad in ["", "9a", "_a", "-a", "A", "aB", "a/b", "..", "a.json", "a%2fb", "a\0", "a b", "ａ", "straﬆ", &long]
        {
            assert!(CacheName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
