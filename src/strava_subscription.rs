//! The Strava push subscription this daemon's application holds: recorded by
//! `tiercache strava subscribe` in `data_dir/webhooks/strava.json` (mode 0600) and read
//! by the webhook route, which refuses events of any other subscription.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Strava's subscription id (`subscription_id` of every event).
    pub id: u64,
    /// The callback URL it was created with.
    pub callback_url: String,
}

/// `data_dir/webhooks/strava.json`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("webhooks").join("strava.json")
}

/// The recorded subscription, if any (an unreadable record counts as none, logged).
pub fn read(data_dir: &Path) -> Option<Subscription> {
    let path = path(data_dir);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, alert = true, "the Strava subscription record is not valid JSON; events are not checked against it");
            None
        }
    }
}

/// Records `subscription` atomically (temp file, fsync, rename).
///
/// # Errors
/// I/O errors.
pub fn write(data_dir: &Path, subscription: &Subscription) -> std::io::Result<()> {
    let path = path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::to_vec_pretty(subscription).map_err(std::io::Error::other)?;
    tiercache_actors::files::durable::write_atomic_mode(&path, &body, 0o600)
}

/// Forgets the record; absent is fine.
///
/// # Errors
/// I/O errors other than the file not existing.
pub fn remove(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
