//! The read-through chain below memory: file, then (with later tiers) Postgres and an
//! emergency refresh. Runs once per cold cache however many readers wait.

use super::Tier;
use crate::domain::{CacheName, Document};
use crate::files::FileHandle;
use std::sync::Arc;

/// Every tier below memory failed (as opposed to simply having nothing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// The tiers below memory, in read order.
#[derive(Clone)]
pub struct Loader {
    files: FileHandle,
}

impl Loader {
    /// A loader reading from the file tier.
    pub fn new(files: FileHandle) -> Self {
        Self { files }
    }

    /// Finds `name` in the first tier that has a valid copy.
    ///
    /// # Errors
    /// [`LoadError`] when a tier failed and none below it had the cache.
    pub async fn load(&self, name: CacheName) -> Result<Option<(Arc<Document>, Tier)>, LoadError> {
        match self.files.read(name).await {
            Ok(Some(doc)) => Ok(Some((doc, Tier::File))),
            Ok(None) => Ok(None),
            Err(e) => Err(LoadError(e.to_string())),
        }
    }
}
