//! `[memory]`, the one place of the config layer that knows its keys: the type `wiring`
//! hands the memory tier, its defaults, the file's form, what `check-config` prints,
//! what a reload compares and how it treats each key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durations::Dur;
use crate::reload::table::Reload::{self, Restart};

/// `[memory]`.
#[derive(Debug, Clone)]
pub(crate) struct MemorySettings {
    pub ttl: Duration,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(300) }
    }
}

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMemory {
    ttl: Dur,
}

impl Default for RawMemory {
    fn default() -> Self {
        Self::from(&MemorySettings::default())
    }
}

impl From<&MemorySettings> for RawMemory {
    fn from(s: &MemorySettings) -> Self {
        let MemorySettings { ttl } = *s;
        Self { ttl: Dur(ttl) }
    }
}

impl From<RawMemory> for MemorySettings {
    /// Nothing to check beyond the types.
    fn from(raw: RawMemory) -> Self {
        let RawMemory { ttl } = raw;
        Self { ttl: ttl.0 }
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(s: &MemorySettings) -> [(&'static str, String); 1] {
    let MemorySettings { ttl } = s;
    [("memory.ttl", format!("{ttl:?}"))]
}

/// How a reload treats each key: the memory tier is built once, at start.
pub(crate) const RELOAD: &[(&str, Reload)] = &[("memory.ttl", Restart)];
