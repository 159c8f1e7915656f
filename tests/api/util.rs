//! Small pure helpers of the API tests: checking a log line's keys, a replayable
//! random generator.

#![allow(dead_code)]

/// Whether a JSON object text has a key twice at its top level (serde_json keeps only
/// the last, so a parsed `Value` cannot tell).
pub fn duplicate_top_level_keys(line: &str) -> Vec<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let _: IgnoredAny = map.next_value()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let keys = de.deserialize_map(Keys).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    keys.into_iter().filter(|k| !seen.insert(k.clone())).collect()
}

pub use tiercache_testkit::rng::Rng;
