//! What the sources' unit tests share: testkit's fake HTTP server under the names these
//! tests use, and a state store in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
pub use tiercache_testkit::fake_http::{FakeServer as TestServer, Recorded, Reply as Canned};

/// A [`StateStore`](super::StateStore) in memory that logs `save KEY TOKEN` events to a
/// log the fake server can share, so tests can check what happened in which order.
#[derive(Default)]
pub struct MemoryState {
    pub saved: Mutex<std::collections::HashMap<String, serde_json::Value>>,
    pub events: Arc<Mutex<Vec<String>>>,
    pub fail: AtomicBool,
}

impl MemoryState {
    pub fn with_events(events: Arc<Mutex<Vec<String>>>) -> Self {
        Self { events, ..Self::default() }
    }
}

impl super::StateStore for MemoryState {
    fn load(&self, key: &str) -> super::BoxFuture<'_, Option<serde_json::Value>> {
        let value = self.saved.lock().unwrap().get(key).cloned();
        Box::pin(async move { value })
    }

    fn remove(&self, key: &str) -> super::BoxFuture<'_, Result<(), String>> {
        self.events.lock().unwrap().push(format!("remove {key}"));
        self.saved.lock().unwrap().remove(key);
        Box::pin(async { Ok(()) })
    }

    fn save(&self, key: &str, state: serde_json::Value) -> super::BoxFuture<'_, Result<(), String>> {
        let result = if self.fail.load(Ordering::SeqCst) {
            Err("disk full".to_owned())
        } else {
            let token = state.get("refresh_token").and_then(|t| t.as_str()).unwrap_or("").to_owned();
            self.events.lock().unwrap().push(format!("save {key} {token}"));
            self.saved.lock().unwrap().insert(key.to_owned(), state);
            Ok(())
        };
        Box::pin(async move { result })
    }
}
