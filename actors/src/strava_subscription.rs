//! The Strava push subscription this daemon's application holds: recorded by
//! `tiercache strava subscribe` in `data_dir/webhooks/strava.json` (mode 0600) and
//! watched by the webhook route ([`SubscriptionWatch`]), which drops events of any
//! other subscription. With Postgres the id is shared through the project's
//! `source_state` row [`SHARED_KEY`], so every instance knows it, not only the one
//! where `subscribe` ran.
//!
//! The daemon reads the record on the runtime without blocking it (`tokio::fs`); the
//! synchronous [`read`], [`write`] and [`remove`] are the one-shot `strava` commands'.

use crate::store::StoreHandle;
use crate::supervisor::spawn_unowned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The `source_state` key of the shared record (no cache's key: those are
/// `strava:NAME` and `stravasync:NAME`).
pub const SHARED_KEY: &str = "stravahook:subscription";

/// How often the record is looked at again (the file, then Postgres), while events
/// arrive.
const RECHECK_MS: i64 = 5_000;

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
    read_checked(data_dir).unwrap_or_else(|e| {
        tracing::warn!(path = %path(data_dir).display(), error = %e, alert = true, "the Strava subscription record is not valid JSON; events are not checked against it");
        None
    })
}

/// The recorded subscription, if any, or why the record does not parse.
fn read_checked(data_dir: &Path) -> Result<Option<Subscription>, String> {
    parse(std::fs::read(path(data_dir)).ok())
}

/// [`read_checked`] on the runtime: the file is read on tokio's blocking pool.
async fn read_checked_async(data_dir: &Path) -> Result<Option<Subscription>, String> {
    parse(tokio::fs::read(path(data_dir)).await.ok())
}

/// The record's bytes (`None`: no readable file) as a subscription.
fn parse(bytes: Option<Vec<u8>>) -> Result<Option<Subscription>, String> {
    let Some(bytes) = bytes else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| e.to_string())
}

/// The subscription id events are checked against, kept up to date in the background:
/// this instance's record when it has one (published to Postgres for the others),
/// else the one another instance published; none anywhere: events are not checked
/// (they are only hints either way).
#[derive(Debug, Default)]
pub struct SubscriptionWatch {
    /// The expected id; 0: none known.
    expected: AtomicU64,
    /// When the record was last looked at (ms since the epoch).
    checked_ms: AtomicI64,
    refreshing: AtomicBool,
    /// What this instance last published (`Some(None)`: it removed the shared record).
    published: Mutex<Option<Option<u64>>>,
    /// The last problem logged about the local record, so it is logged once.
    complained: Mutex<Option<String>>,
}

impl SubscriptionWatch {
    /// A watch that knows this instance's record from the start (read once, while the
    /// daemon starts, before any event is served).
    pub fn new(data_dir: &Path) -> Arc<Self> {
        let watch = Arc::new(Self::default());
        if let Ok(Some(s)) = read_checked(data_dir) {
            watch.expected.store(s.id, Ordering::Release);
        }
        watch
    }

    /// The expected subscription id (none known: `None`); looks again in the
    /// background every few seconds.
    pub fn expected(self: &Arc<Self>, data_dir: &Path, store: Option<StoreHandle>) -> Option<u64> {
        let now = chrono::Utc::now().timestamp_millis();
        let stale = now - self.checked_ms.load(Ordering::Acquire) >= RECHECK_MS;
        if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
            self.checked_ms.store(now, Ordering::Release);
            let (watch, data_dir) = (self.clone(), data_dir.to_owned());
            spawn_unowned("strava subscription check", async move {
                // Cleared even if the refresh panics, so the next event looks again.
                let _done = Refreshing(&watch.refreshing);
                watch.refresh(&data_dir, store).await;
            });
        }
        Some(self.expected.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    async fn refresh(&self, data_dir: &Path, store: Option<StoreHandle>) {
        let local = match read_checked_async(data_dir).await {
            Ok(local) => local,
            Err(e) => {
                let mut complained = self.complained.lock().unwrap_or_else(PoisonError::into_inner);
                if complained.as_deref() != Some(e.as_str()) {
                    tracing::warn!(path = %path(data_dir).display(), error = %e, alert = true, "the Strava subscription record is not valid JSON; it is ignored");
                    *complained = Some(e);
                }
                None
            }
        };
        let published = *self.published.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match (local, store) {
            (Some(s), Some(store)) => {
                if published != Some(Some(s.id)) {
                    let record = serde_json::json!({"id": s.id, "callback_url": s.callback_url});
                    match store.save_state(SHARED_KEY.to_owned(), record).await {
                        Ok(()) => self.set_published(Some(s.id)),
                        Err(e) => tracing::debug!(error = %e, "the Strava subscription id is not shared yet"),
                    }
                }
                Some(s.id)
            }
            (Some(s), None) => Some(s.id),
            (None, Some(store)) => {
                // `unsubscribe` ran here: the shared record goes too.
                if matches!(published, Some(Some(_))) {
                    match store.delete_state(SHARED_KEY.to_owned()).await {
                        Ok(()) => self.set_published(None),
                        Err(e) => tracing::debug!(error = %e, "the shared Strava subscription id is not removed yet"),
                    }
                }
                match store.load_state(SHARED_KEY.to_owned()).await {
                    Ok(shared) => shared.and_then(|v| v.get("id").and_then(serde_json::Value::as_u64)),
                    // Postgres away: keep what was known.
                    Err(_) => Some(self.expected.load(Ordering::Acquire)).filter(|id| *id != 0),
                }
            }
            (None, None) => None,
        };
        self.expected.store(id.unwrap_or(0), Ordering::Release);
    }

    fn set_published(&self, id: Option<u64>) {
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
    }
}

/// Clears the "a refresh is running" flag when dropped.
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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
    crate::files::durable::write_atomic_mode(&path, &body, 0o600)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn the_watch_follows_the_record_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let record = Subscription { id: 7, callback_url: "https://example.org/hook".into() };
        write(dir.path(), &record).unwrap();
        let watch = SubscriptionWatch::new(dir.path());
        assert_eq!(watch.expected(dir.path(), None), Some(7), "known from the start");

        remove(dir.path()).unwrap();
        watch.refresh(dir.path(), None).await;
        assert_eq!(watch.expected.load(Ordering::Acquire), 0, "forgotten with the record");

        std::fs::write(path(dir.path()), b"not json").unwrap();
        assert!(read_checked_async(dir.path()).await.is_err());
        write(dir.path(), &Subscription { id: 9, ..record }).unwrap();
        watch.refresh(dir.path(), None).await;
        assert_eq!(watch.expected.load(Ordering::Acquire), 9);
    }
}
