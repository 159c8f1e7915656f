//! The read-through chain below memory: file, then Postgres (whose row rewrites the
//! file). Runs once per cold cache however many readers wait.

use super::ServedFrom;
use crate::cache_rules::LiveRules;
use crate::domain::{CacheName, Document};
use crate::files::{FileHandle, FileTierError};
use crate::save_flow::{Adopter, InMemory};
use crate::store::{StoreError, StoreHandle};
use crate::supervisor::ActorPanicked;
use std::sync::Arc;

/// Every tier below memory failed (as opposed to simply having nothing), or the memory
/// tier itself could not run the load. Cloned to every reader waiting on the load.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The file tier failed, and Postgres is off or holds nothing it can serve.
    #[error("{0}")]
    File(Arc<FileTierError>),
    /// Postgres failed, and the file tier holds nothing it can serve.
    #[error("{0}")]
    Postgres(StoreError),
    /// Both failed.
    #[error("{file}; {postgres}")]
    Both {
        /// The file tier's error.
        file: Arc<FileTierError>,
        /// Postgres's.
        postgres: StoreError,
    },
    /// The memory tier's handler panicked before the load started.
    #[error(transparent)]
    Panicked(ActorPanicked),
    /// The load itself panicked; the next read tries again.
    #[error("{0}; the load is tried again")]
    LoadPanicked(ActorPanicked),
    /// The memory tier restarted while the load was waited for.
    #[error("the memory tier restarted during the load")]
    Restarted,
    /// The memory tier's mailbox did not take the request.
    #[error("memory tier unavailable{}", .0.map(|e| format!(": {e}")).unwrap_or_default())]
    Unavailable(Option<actix::MailboxError>),
}

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
    pub async fn load(&self, name: CacheName) -> Result<Option<(Arc<Document>, ServedFrom)>, LoadError> {
        fail::fail_point!("memory::load");
        let file_error = match self.files.read(name.clone()).await {
            Ok(found) if found.doc.as_ref().is_some_and(|d| self.conforms(d, "file")) => {
                return Ok(found.doc.map(|d| (d, ServedFrom::File)));
            }
            // Deleted here and not yet in Postgres: reading Postgres would resurrect it.
            Ok(found) if found.deleted => return Ok(None),
            Ok(_) => None,
            Err(e) => Some(Arc::new(e)),
        };
        let nothing_below =
            |file_error: Option<Arc<FileTierError>>| file_error.map_or(Ok(None), |e| Err(LoadError::File(e)));
        let Some(store) = &self.store else {
            return nothing_below(file_error);
        };
        match store.read(name.clone()).await {
            Ok(Some(doc)) if !self.conforms(&doc, "postgres") => nothing_below(file_error),
            Ok(Some(doc)) => {
                if let Err(e) = self.adopter.adopt(doc.clone(), None, InMemory::Follow).await {
                    tracing::warn!(cache = %name, tier = "file", error = %e, "could not rewrite the file from Postgres");
                } else {
                    tracing::info!(cache = %name, version = doc.version, "file rewritten from Postgres");
                }
                Ok(Some((doc, ServedFrom::Postgres)))
            }
            Ok(None) => nothing_below(file_error),
            Err(postgres) => Err(match file_error {
                Some(file) => LoadError::Both { file, postgres },
                None => LoadError::Postgres(postgres),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_error_reads_as_before() {
        let file = || Arc::new(FileTierError::Io(std::io::Error::other("disk gone")));
        let postgres = || StoreError::Unavailable("refused".into());
        assert_eq!(LoadError::File(file()).to_string(), "file tier I/O error: disk gone");
        assert_eq!(LoadError::Postgres(postgres()).to_string(), "postgres unavailable: refused");
        assert_eq!(
            LoadError::Both { file: file(), postgres: postgres() }.to_string(),
            "file tier I/O error: disk gone; postgres unavailable: refused"
        );
        let panicked = ActorPanicked("memory");
        assert_eq!(LoadError::Panicked(panicked).to_string(), "the memory actor failed and is restarting");
        assert_eq!(
            LoadError::LoadPanicked(panicked).to_string(),
            "the memory actor failed and is restarting; the load is tried again"
        );
        assert_eq!(LoadError::Restarted.to_string(), "the memory tier restarted during the load");
        assert_eq!(LoadError::Unavailable(None).to_string(), "memory tier unavailable");
        assert_eq!(
            LoadError::Unavailable(Some(actix::MailboxError::Closed)).to_string(),
            "memory tier unavailable: Mailbox has closed"
        );
    }
}
