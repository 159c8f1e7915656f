//! The per-cache rules of admission (`max_size`, `schema`) and the one function that
//! admits a document: PUT, refresh, import and restore all go through [`Rules::admit`].
//!
//! The rules are built from the configuration (the daemon's `wiring`) and swapped whole
//! on SIGHUP through [`LiveRules`], which the save flow and the memory tier's loads share.

use crate::domain::limits::{check_depth, TooDeep, MAX_DEPTH};
use crate::domain::{CacheName, DocumentSchema, NewDocument};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// `retention_days` of a cache that does not set it: the file's default, and what a row
/// is written with when its cache has left the configuration meanwhile.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// `name`'s `retention_days` among the configured caches' `days`.
pub fn retention_days_of(days: &HashMap<CacheName, u32>, name: &CacheName) -> u32 {
    days.get(name).copied().unwrap_or(DEFAULT_RETENTION_DAYS)
}

/// What one cache admits.
#[derive(Debug, Clone)]
pub struct CacheRules {
    /// `max_size`: the largest canonical document, in bytes.
    pub max_size: u64,
    /// `schema`, compiled: every document must pass it.
    pub schema: Option<Arc<DocumentSchema>>,
}

/// Why a document was not admitted. Callers map it to their own answer (HTTP status,
/// exit code, refresh error); the data to word it is here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The cache has no rules: it is not configured (any more).
    #[error("the cache is not configured")]
    NotConfigured,
    /// The canonical document is above `max_size`.
    #[error("the document is {size} bytes, above max_size {limit}")]
    TooLarge {
        /// The canonical document's size.
        size: u64,
        /// The cache's `max_size`.
        limit: u64,
    },
    /// Arrays and objects nest too deep (checked on the raw bytes, before parsing).
    #[error(transparent)]
    TooDeep(#[from] TooDeep),
    /// Not JSON; the parser's message.
    #[error("{0}")]
    InvalidJson(String),
    /// The cache's JSON Schema refused it; the first few problems.
    #[error("{}", .0.join("; "))]
    Schema(Vec<String>),
}

/// Whose document was refused, for [`Refusal::worded`].
#[derive(Debug, Clone, Copy)]
pub enum Refused<'a> {
    /// A document a refresh fetched (meta's `last_refresh_error`, the refresh's log).
    Fetched,
    /// A file an offline command (`import`, `restore`) was given, as shown to the
    /// operator, for `cache`.
    File {
        /// The file as the command shows it.
        shown: &'a str,
        /// The cache it was for.
        cache: &'a str,
    },
}

impl Refusal {
    /// The one wording of a refusal outside the API (which answers with a status code
    /// and its own body): the refresh's and the offline commands'.
    pub fn worded(&self, subject: Refused<'_>) -> String {
        match (subject, self) {
            (Refused::Fetched, Self::TooLarge { size, limit }) => {
                format!("fetched document is {size} bytes, above max_size {limit}")
            }
            (Refused::Fetched, Self::InvalidJson(e)) => format!("upstream sent invalid JSON: {e}"),
            (Refused::Fetched, Self::Schema(errors)) => {
                format!("fetched document fails the cache's schema: {}", errors.join("; "))
            }
            (Refused::Fetched, other) => format!("fetched document refused: {other}"),
            (Refused::File { shown, .. }, Self::InvalidJson(e)) => format!("{shown} is not valid JSON: {e}"),
            (Refused::File { shown, cache }, Self::TooLarge { size, limit }) => {
                format!("{shown} is {size} bytes, more than max_size ({limit} bytes) of cache {cache}")
            }
            (Refused::File { shown, cache }, Self::Schema(errors)) => {
                format!("{shown} fails the JSON Schema of cache {cache}: {}", errors.join("; "))
            }
            (Refused::File { shown, .. }, other) => format!("{shown}: {other}"),
        }
    }
}

/// A document that passed its cache's rules: only [`Rules::admit`] makes one, and the
/// save flow saves nothing else.
#[derive(Debug, Clone)]
pub struct Admitted(NewDocument);

impl Admitted {
    /// The canonical document.
    pub fn doc(&self) -> &NewDocument {
        &self.0
    }

    /// Sets the fetch times (a refresh's, an import's or a backup's own).
    pub fn with_fetch_times(mut self, last_fetch: Option<DateTime<Utc>>, last_rich: Option<DateTime<Utc>>) -> Self {
        self.0.last_fetch = last_fetch;
        self.0.last_rich_fetch = last_rich;
        self
    }

    pub(crate) fn into_inner(self) -> NewDocument {
        self.0
    }
}

/// Every configured cache's rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    caches: HashMap<CacheName, CacheRules>,
}

impl Rules {
    /// Rules for these caches.
    pub fn new(caches: HashMap<CacheName, CacheRules>) -> Self {
        Self { caches }
    }

    /// The rules of `name`, when it is configured.
    pub fn get(&self, name: &CacheName) -> Option<&CacheRules> {
        self.caches.get(name)
    }

    /// How many caches have a schema (for the startup log line).
    pub fn schema_count(&self) -> usize {
        self.caches.values().filter(|r| r.schema.is_some()).count()
    }

    /// Admits `raw` as the next document of `name`: depth on the raw bytes (a hostile
    /// body is refused before the parser recurses), canonical form, `max_size` on the
    /// canonical bytes (what is stored), then the schema.
    ///
    /// # Errors
    /// The first [`Refusal`] met, in that order.
    pub fn admit(&self, name: &CacheName, raw: &[u8]) -> Result<Admitted, Refusal> {
        let rules = self.caches.get(name).ok_or(Refusal::NotConfigured)?;
        check_depth(raw, MAX_DEPTH)?;
        let doc = NewDocument::from_json(raw).map_err(|e| Refusal::InvalidJson(e.to_string()))?;
        let size = doc.body.len() as u64;
        if size > rules.max_size {
            return Err(Refusal::TooLarge { size, limit: rules.max_size });
        }
        check_schema(rules, &doc.body)?;
        Ok(Admitted(doc))
    }

    /// Whether a document held in a tier (a file, a row) passes the schema of `name`:
    /// one that does not is never served. A cache without rules has nothing to check.
    ///
    /// # Errors
    /// [`Refusal::Schema`] (or [`Refusal::InvalidJson`] for a body that is not JSON).
    pub fn conforms(&self, name: &CacheName, body: &[u8]) -> Result<(), Refusal> {
        self.caches.get(name).map_or(Ok(()), |rules| check_schema(rules, body))
    }
}

fn check_schema(rules: &CacheRules, body: &[u8]) -> Result<(), Refusal> {
    let Some(schema) = &rules.schema else { return Ok(()) };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Refusal::InvalidJson(e.to_string()))?;
    schema.validate(&value).map_err(Refusal::Schema)
}

/// The rules in force, swapped whole on SIGHUP; every clone sees the swap.
#[derive(Clone, Default)]
pub struct LiveRules(Arc<ArcSwap<Rules>>);

impl LiveRules {
    /// Starts with `rules`.
    pub fn new(rules: Rules) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(rules)))
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Rules> {
        self.0.load_full()
    }

    /// SIGHUP: new rules for every admission and load from now on.
    pub fn replace(&self, rules: Rules) {
        self.0.store(Arc::new(rules));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn name(s: &str) -> CacheName {
        CacheName::parse(s).unwrap()
    }

    #[test]
    fn a_refused_file_is_worded_one_way_for_every_command() {
        let file = Refused::File { shown: "DIR/strava.json", cache: "strava" };
        let words = |r: Refusal| r.worded(file);
        assert_eq!(
            words(Refusal::TooLarge { size: 120, limit: 100 }),
            "DIR/strava.json is 120 bytes, more than max_size (100 bytes) of cache strava"
        );
        assert_eq!(
            words(Refusal::Schema(vec!["/a: x".into(), "/b: y".into()])),
            "DIR/strava.json fails the JSON Schema of cache strava: /a: x; /b: y"
        );
        assert_eq!(words(Refusal::InvalidJson("EOF".into())), "DIR/strava.json is not valid JSON: EOF");
        assert_eq!(words(Refusal::NotConfigured), "DIR/strava.json: the cache is not configured");
    }

    fn rules() -> Rules {
        let schema = DocumentSchema::from_value(&json!({"type": "object", "required": ["a"]})).unwrap();
        let mut caches = HashMap::new();
        caches.insert(name("plain"), CacheRules { max_size: 16, schema: None });
        caches.insert(name("typed"), CacheRules { max_size: 1024, schema: Some(Arc::new(schema)) });
        Rules::new(caches)
    }

    #[test]
    fn admits_the_canonical_form() {
        let admitted = rules().admit(&name("plain"), br#"{ "b": 1,  "a": 2 }"#).unwrap();
        assert_eq!(&admitted.doc().body[..], br#"{"a":2,"b":1}"#);
        assert!(rules().admit(&name("typed"), br#"{"a": 1}"#).is_ok());
    }

    #[test]
    fn refuses_an_unconfigured_cache() {
        assert_eq!(rules().admit(&name("other"), b"{}").unwrap_err(), Refusal::NotConfigured);
    }

    #[test]
    fn size_is_measured_on_the_canonical_bytes() {
        // 20 raw bytes, 13 canonical: admitted.
        assert!(rules().admit(&name("plain"), br#"{ "a" :  1 , "b": 2 }"#).is_ok());
        let refused = rules().admit(&name("plain"), br#"{"a":"0123456789abcdef"}"#).unwrap_err();
        assert_eq!(refused, Refusal::TooLarge { size: 24, limit: 16 });
    }

    #[test]
    fn depth_is_checked_before_parsing() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(rules().admit(&name("typed"), deep.as_bytes()), Err(Refusal::TooDeep(_))));
    }

    #[test]
    fn refuses_what_is_not_json() {
        assert!(matches!(rules().admit(&name("plain"), b"{nope"), Err(Refusal::InvalidJson(_))));
    }

    #[test]
    fn refuses_what_fails_the_schema() {
        let Err(Refusal::Schema(errors)) = rules().admit(&name("typed"), br#"{"b": 1}"#) else { panic!() };
        assert!(errors[0].contains("\"a\""), "{errors:?}");
        assert!(rules().conforms(&name("typed"), br#"{"b":1}"#).is_err());
        assert!(rules().conforms(&name("typed"), br#"{"a":1}"#).is_ok());
        assert!(rules().conforms(&name("unknown"), b"[]").is_ok());
    }

    #[test]
    fn a_swap_reaches_every_clone() {
        let live = LiveRules::new(Rules::default());
        let clone = live.clone();
        live.replace(rules());
        assert!(clone.current().get(&name("plain")).is_some());
        assert_eq!(clone.current().schema_count(), 1);
    }
}
