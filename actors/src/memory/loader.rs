//! The read-through chain below memory: file, then Postgres (whose row rewrites the
//! file). Runs once per cold cache however many readers wait.

use super::Tier;
use crate::cache_rules::LiveRules;
use crate::domain::{CacheName, Document};
use crate::files::FileHandle;
use crate::save_flow::{Adopter, InMemory};
use crate::store::StoreHandle;
use std::sync::Arc;

/// Every tier below memory failed (as opposed to simply having nothing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// The tiers below memory, in read order.
#[derive(Clone)]
pub struct Loader {
    files: FileHandle,
    /// A row read from Postgres rewrites the file (memory stores what the load returns).
    adopter: Adopter,
    store: Option<StoreHandle>,
    rules: LiveRules,
}

impl Loader {
    /// A loader reading from the file tier, then from Postgres when enabled, checking
    /// what it finds against the rules in force (SIGHUP swaps them in `rules`).
    pub fn new(files: FileHandle, store: Option<StoreHandle>, rules: LiveRules) -> Self {
        Self { adopter: Adopter::files_only(files.clone()), files, store, rules }
    }

    /// A document that fails its cache's schema is corrupt: never served.
    fn conforms(&self, doc: &Document, tier: &'static str) -> bool {
        match self.rules.current().conforms(&doc.name, &doc.body) {
            Ok(()) => true,
            Err(refusal) => {
                tracing::error!(
                    cache = %doc.name, tier, version = doc.version, alert = true, error = %refusal,
                    "document fails the cache's schema; not served"
                );
                false
            }
        }
    }

    /// Finds `name` in the first tier that has a valid copy.
    ///
    /// # Errors
    /// [`LoadError`] when a tier failed and none below it had the cache.
    pub async fn load(&self, name: CacheName) -> Result<Option<(Arc<Document>, Tier)>, LoadError> {
        fail::fail_point!("memory::load");
        let file_error = match self.files.read(name.clone()).await {
            Ok(found) if found.doc.as_ref().is_some_and(|d| self.conforms(d, "file")) => {
                return Ok(found.doc.map(|d| (d, Tier::File)));
            }
            // Deleted here and not yet in Postgres: reading Postgres would resurrect it.
            Ok(found) if found.deleted => return Ok(None),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        let Some(store) = &self.store else {
            return file_error.map_or(Ok(None), |e| Err(LoadError(e)));
        };
        match store.read(name.clone()).await {
            Ok(Some(doc)) if !self.conforms(&doc, "postgres") => file_error.map_or(Ok(None), |e| Err(LoadError(e))),
            Ok(Some(doc)) => {
                if let Err(e) = self.adopter.adopt(doc.clone(), None, InMemory::Follow).await {
                    tracing::warn!(cache = %name, tier = "file", error = %e, "could not rewrite the file from Postgres");
                } else {
                    tracing::info!(cache = %name, version = doc.version, "file rewritten from Postgres");
                }
                Ok(Some((doc, Tier::Postgres)))
            }
            Ok(None) => file_error.map_or(Ok(None), |e| Err(LoadError(e))),
            Err(e) => Err(LoadError(match file_error {
                Some(f) => format!("{f}; {e}"),
                None => e.to_string(),
            })),
        }
    }
}
