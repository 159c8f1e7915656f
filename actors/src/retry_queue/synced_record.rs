//! `data_dir/queue/synced.json`, written on a thread of its own.
//!
//! The record is rewritten after every write Postgres confirms. Its two fsyncs used to
//! run on the System thread, which also serves the memory tier, so every confirmation
//! held up PUTs (docs/performance.md). Now the queue hands over the whole record and
//! goes on; the writer thread always writes the newest record it was given, so the file
//! only ever moves forward, and a record superseded while a write is running is skipped.
//!
//! The file lags the queue's own map by at most the write in progress and the next one.
//! What a crash in that window costs is what it cost before in the single write's
//! window: confirmed saves taken for pending and sent again (docs/runtime-semantics.md).
//! Whoever reads the file first waits for it ([`SyncedRecord::flush`]): the queue when
//! it rebuilds itself after a restart, the daemon before it exits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The handle the retry queue keeps; the thread runs for the life of the process.
pub struct SyncedRecord {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The newest record not yet taken by the writer.
    next: Option<Vec<u8>>,
    /// How many records were handed over, and how many of them are on disk (or were
    /// superseded by one that is).
    submitted: u64,
    written: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SyncedRecord {
    /// Starts the writer thread for the record at `path`.
    pub fn start(path: PathBuf) -> Self {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("synced-record".into())
            .spawn(move || write_loop(&worker, &path))
            .expect("spawn the synced-record thread");
        Self { shared }
    }

    /// Hands over the whole record (JSON bytes); returns at once.
    pub fn submit(&self, bytes: Vec<u8>) {
        let mut state = self.shared.lock();
        state.next = Some(bytes);
        state.submitted += 1;
        self.shared.changed.notify_all();
    }

    /// Waits until every record handed over so far is on disk (or superseded by one that
    /// is). Takes at most the time of two writes.
    pub fn flush(&self) {
        let mut state = self.shared.lock();
        let target = state.submitted;
        while state.written < target {
            state = self.shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

fn write_loop(shared: &Shared, path: &Path) {
    loop {
        let (bytes, generation) = {
            let mut state = shared.lock();
            while state.next.is_none() {
                state = shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            (state.next.take().expect("checked above"), state.submitted)
        };
        let result = std::fs::create_dir_all(path.parent().expect("queue dir"))
            .and_then(|()| crate::files::durable::write_atomic(path, &bytes));
        if let Err(e) = result {
            tracing::warn!(actor = super::ACTOR, error = %e, "could not record synced versions; they will be sent again");
        }
        let mut state = shared.lock();
        state.written = generation;
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_ends_with_the_newest_record_and_flush_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue").join("synced.json");
        let record = SyncedRecord::start(path.clone());
        for i in 0..500u32 {
            record.submit(format!("{{\"a\":{i}}}").into_bytes());
        }
        record.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":499}");
        // Flushing with nothing handed over returns at once.
        record.flush();
        record.submit(b"{\"a\":500}".to_vec());
        record.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":500}");
    }
}
