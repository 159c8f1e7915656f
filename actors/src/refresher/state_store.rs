//! Durable source state (Strava's rotated refresh token): `data_dir/sources/KEY.json`,
//! written atomically with mode 0600, and the project's `source_state` row in Postgres
//! when enabled, both before the state is used.

use super::sources::{BoxFuture, StateStore};
use crate::files::durable;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Keeps each source's state in its own file, and in Postgres when enabled.
pub struct FileStateStore {
    dir: PathBuf,
    store: Option<crate::store::StoreHandle>,
}

impl FileStateStore {
    /// State files live in `data_dir/sources`.
    pub fn new(data_dir: &std::path::Path, store: Option<crate::store::StoreHandle>) -> Self {
        Self { dir: data_dir.join("sources"), store }
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
        let (key, store) = (key.to_owned(), self.store.clone());
        Box::pin(async move {
            if let Some(state) = tokio::fs::read(&path).await.ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                return Some(state);
            }
            // A lost data_dir: Postgres still has it.
            store?.load_state(key).await.ok().flatten()
        })
    }

    fn load_shared(&self, key: &str) -> BoxFuture<'_, Option<serde_json::Value>> {
        let (key, store) = (key.to_owned(), self.store.clone());
        Box::pin(async move { store?.load_state(key).await.ok().flatten() })
    }

    fn remove(&self, key: &str) -> BoxFuture<'_, Result<(), String>> {
        let path = self.path(key);
        let dir = self.dir.clone();
        let (key, store) = (key.to_owned(), self.store.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
                Ok(()) => std::fs::File::open(&dir)?.sync_all(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot delete source state: {e}"))?;
            if let Some(store) = store {
                store.delete_state(key).await.map_err(|e| format!("cannot delete source state in Postgres: {e}"))?;
            }
            Ok(())
        })
    }

    fn save(&self, key: &str, state: serde_json::Value) -> BoxFuture<'_, Result<(), String>> {
        let path = self.path(key);
        let dir = self.dir.clone();
        let (key, store, copy) = (key.to_owned(), self.store.clone(), state.clone());
        Box::pin(async move {
            let on_disk = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                durable::write_atomic_mode(&path, state.to_string().as_bytes(), 0o600)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot save source state: {e}"));
            on_disk?;
            // The file is the copy that must exist before use; Postgres is the copy that
            // survives a lost data_dir. While Postgres is away the file alone carries it.
            if let Some(store) = store {
                if let Err(e) = store.save_state(key.clone(), copy).await {
                    tracing::warn!(state = %key, error = %e, alert = true, "source state saved on disk only; Postgres did not take it");
                }
            }
            Ok(())
        })
    }
}
