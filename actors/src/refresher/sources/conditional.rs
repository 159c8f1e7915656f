//! Conditional requests for the `http` and `justgiving` sources: the `ETag` and
//! `Last-Modified` of the last successful fetch go back as `If-None-Match` and
//! `If-Modified-Since`, and a 304 is a fetch that changed nothing.
//!
//! The validators are kept with the cache's source state (so they survive restarts)
//! together with the checksum of the document they describe: they are sent only while
//! the cache still holds that document, so a 304 never confirms data that a PUT or a
//! restore has replaced since.

use super::client::{Request, Response};
use super::StateStore;
use crate::domain::{CacheName, Document, NewDocument};
use serde_json::{json, Value};
use std::sync::Arc;

/// What a last successful fetch told about its document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
    /// The canonical document's checksum (`sha256:HEX`).
    checksum: String,
}

/// One cache's validators: loaded on first use, saved after each changed fetch.
pub struct Conditional {
    key: String,
    state: Arc<dyn StateStore>,
    cached: tokio::sync::Mutex<Option<Option<Validators>>>,
}

impl Conditional {
    /// The validators of `cache`, kept in `state`.
    pub fn new(cache: &CacheName, state: Arc<dyn StateStore>) -> Self {
        Self { key: Self::state_key(cache), state, cached: tokio::sync::Mutex::new(None) }
    }

    /// The StateStore key (a cache name never holds `:`).
    pub fn state_key(cache: &CacheName) -> String {
        format!("conditional:{cache}")
    }

    /// `request` with `If-None-Match`/`If-Modified-Since` when the cache still holds the
    /// document they describe; the bool says whether any was added.
    pub async fn apply(&self, mut request: Request, held: Option<&Document>) -> (Request, bool) {
        let Some(held) = held else { return (request, false) };
        let Some(v) = self.load().await.filter(|v| v.checksum == held.checksum.to_string()) else {
            return (request, false);
        };
        let mut sent = false;
        if let Some(etag) = v.etag {
            request = request.header("If-None-Match", etag);
            sent = true;
        }
        if let Some(date) = v.last_modified {
            request = request.header("If-Modified-Since", date);
            sent = true;
        }
        (request, sent)
    }

    /// Records the validators of a changed (2xx) answer; a failed save only means the
    /// next fetch is unconditional, so it is logged.
    pub async fn remember(&self, response: &Response) {
        let header = |name: &str| response.headers.get(name).map(str::to_owned).filter(|v| !v.is_empty());
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let next = match NewDocument::from_json(&response.body) {
            Ok(doc) if etag.is_some() || last_modified.is_some() => {
                Some(Validators { etag, last_modified, checksum: doc.checksum.to_string() })
            }
            _ => None,
        };
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| *c == next) {
            return;
        }
        let value = next
            .as_ref()
            .map_or(Value::Null, |v| json!({"etag": v.etag, "last_modified": v.last_modified, "checksum": v.checksum}));
        if let Err(e) = self.state.save(&self.key, value).await {
            tracing::warn!(state = %self.key, error = %e, "could not keep the upstream's validators");
        }
        *cached = Some(next);
    }

    async fn load(&self) -> Option<Validators> {
        let mut cached = self.cached.lock().await;
        if cached.is_none() {
            let value = self.state.load(&self.key).await.unwrap_or(Value::Null);
            let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
            *cached = Some(text("checksum").map(|checksum| Validators {
                etag: text("etag"),
                last_modified: text("last_modified"),
                checksum,
            }));
        }
        cached.clone().flatten()
    }
}
