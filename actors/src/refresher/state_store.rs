//! Durable source state (Strava's rotated refresh token) under
//! `data_dir/sources/KEY.json`, written atomically with mode 0600 before it is used.

use super::sources::{BoxFuture, StateStore};
use crate::files::durable;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Keeps each source's state in its own file.
pub struct FileStateStore {
    dir: PathBuf,
}

impl FileStateStore {
    /// State files live in `data_dir/sources`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self { dir: data_dir.join("sources") }
    }

    fn path(&self, key: &str) -> PathBuf {
        // Keys are "kind:cache" with a validated cache name; keep the file name plain.
        let safe: String =
            key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        self.dir.join(format!("{safe}.json"))
    }
}

impl StateStore for FileStateStore {
    fn load(&self, key: &str) -> BoxFuture<'_, Option<serde_json::Value>> {
        let path = self.path(key);
        Box::pin(async move {
            let bytes = tokio::fs::read(&path).await.ok()?;
            serde_json::from_slice(&bytes).ok()
        })
    }

    fn save(&self, key: &str, state: serde_json::Value) -> BoxFuture<'_, Result<(), String>> {
        let path = self.path(key);
        let dir = self.dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                durable::write_atomic_mode(&path, state.to_string().as_bytes(), 0o600)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot save source state: {e}"))
        })
    }
}
