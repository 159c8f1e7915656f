//! `data_dir/retention.json`: the last configured `retention_days` of each cache.
//!
//! Once a cache leaves the configuration its `retention_days` leaves with it; this
//! record keeps the value, so the file side never purges earlier than the operator
//! asked, with or without Postgres.

use crate::domain::CacheName;
use crate::files::durable;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

/// The record's file name under `data_dir`.
pub const FILE: &str = "retention.json";

/// Cache name → the last `retention_days` it was configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRecord {
    path: PathBuf,
    days: BTreeMap<CacheName, u32>,
}

impl RetentionRecord {
    /// Reads the record of `data_dir`; a missing or unreadable one is empty (logged).
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join(FILE);
        let days = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, u32>>(&bytes) {
                Ok(map) => map.into_iter().filter_map(|(k, v)| Some((CacheName::parse(&k).ok()?, v))).collect(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "retention record unreadable; starting a new one");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "retention record unreadable; starting a new one");
                BTreeMap::new()
            }
        };
        Self { path, days }
    }

    /// Records the configured caches' current values.
    pub fn remember(&mut self, configured: &HashMap<CacheName, u32>) {
        for (name, days) in configured {
            self.days.insert(name.clone(), *days);
        }
    }

    /// The last configured value of `name`, if known.
    pub fn get(&self, name: &CacheName) -> Option<u32> {
        self.days.get(name).copied()
    }

    /// Keeps only the caches for which `keep` holds (the others left no trace to purge).
    pub fn retain(&mut self, keep: impl Fn(&CacheName) -> bool) {
        self.days.retain(|name, _| keep(name));
    }

    /// Writes the record durably (temp file, fsync, rename), unless the file already
    /// holds exactly this: every pass would otherwise cost two fsyncs for nothing.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self) -> io::Result<()> {
        let map: BTreeMap<&str, u32> = self.days.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let bytes = serde_json::to_vec_pretty(&map).map_err(io::Error::other)?;
        if std::fs::read(&self.path).is_ok_and(|on_disk| on_disk == bytes) {
            return Ok(());
        }
        durable::write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> CacheName {
        CacheName::parse(s).unwrap()
    }

    #[test]
    fn remembers_removed_caches_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = RetentionRecord::load(dir.path());
        record.remember(&HashMap::from([(name("a"), 90), (name("b"), 7)]));
        record.save().unwrap();
        // `a` leaves the configuration: its value stays; `b` changes.
        let mut record = RetentionRecord::load(dir.path());
        record.remember(&HashMap::from([(name("b"), 10)]));
        assert_eq!((record.get(&name("a")), record.get(&name("b"))), (Some(90), Some(10)));
        record.retain(|n| n.as_str() == "b");
        record.save().unwrap();
        let record = RetentionRecord::load(dir.path());
        assert_eq!((record.get(&name("a")), record.get(&name("b"))), (None, Some(10)));
    }

    #[test]
    fn an_unreadable_record_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"not json").unwrap();
        assert_eq!(RetentionRecord::load(dir.path()).get(&name("a")), None);
    }
}
