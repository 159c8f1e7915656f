//! The file tier: one envelope per cache under `data_dir/caches`, written durably and
//! verified on every read.
//!
//! The actor owns the directory and an index of the version on disk per cache (rebuilt
//! from disk at start and after every restart), so versions increase strictly and
//! `If-Match` is checked where writes are serialised. Corrupt envelopes are moved to
//! `data_dir/corrupt/` and never served; another project's envelope is not corrupt: it
//! is left where it is, unserved, with an alert log line. A DELETE leaves a tombstone in
//! `data_dir/tombstones/` recording the last version, so versions keep increasing.

mod actor;
mod decide;
pub mod durable;
mod handle;
mod handlers;
mod messages;

pub use handle::FileHandle;
pub use messages::{AdoptFile, ForgetTombstone, ListFiles, PurgeFile, ReadFile, RemoveFile, ReserveVersion, WriteFile};

use crate::domain::envelope::{self, EnvelopeError};
use crate::domain::{CacheName, Document, NewDocument, Precondition};
use crate::metrics::{CacheKind, CacheResult, Metrics};
use crate::supervisor::{ActorPanicked, FailureReporter};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Actor name in logs and metrics.
pub const ACTOR: &str = crate::supervisor::ActorId::File.label();

/// What can go wrong in the file tier.
#[derive(Debug, thiserror::Error)]
pub enum FileTierError {
    /// Reading or writing failed (disk full, permissions...).
    #[error("file tier I/O error: {0}")]
    Io(#[from] io::Error),
    /// `If-Match` did not match the current version.
    #[error("precondition failed: current version is {current:?}")]
    PreconditionFailed {
        /// The current ETag, if any.
        current: Option<String>,
    },
    /// The actor failed while handling the request.
    #[error(transparent)]
    Panicked(#[from] ActorPanicked),
}

/// What the actor needs to start.
#[derive(Debug, Clone)]
pub struct FileTierConfig {
    /// The daemon's `data_dir`.
    pub data_dir: PathBuf,
    /// Written into and checked in every envelope.
    pub project: String,
}

/// Facts about what is on disk for one cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDisk {
    /// Version of the envelope, or of the tombstone when deleted.
    pub version: u64,
    /// ETag of the envelope; `None` when deleted or found corrupt.
    pub etag: Option<String>,
    /// A tombstone is on disk: the delete has not reached Postgres yet.
    pub deleted: bool,
    /// The envelope's last fetch (the refresher's schedule starts from it).
    pub last_fetch: Option<chrono::DateTime<Utc>>,
    /// The envelope's last rich fetch.
    pub last_rich_fetch: Option<chrono::DateTime<Utc>>,
}

impl OnDisk {
    fn of(doc: &Document) -> Self {
        Self {
            version: doc.version,
            etag: Some(doc.etag.clone()),
            deleted: false,
            last_fetch: doc.last_fetch,
            last_rich_fetch: doc.last_rich_fetch,
        }
    }

    fn tombstone(version: u64) -> Self {
        Self { version, etag: None, deleted: true, last_fetch: None, last_rich_fetch: None }
    }
}

/// What a read of the file tier found.
#[derive(Debug, Clone, Default)]
pub struct FileLookup {
    /// The verified document, if any.
    pub doc: Option<Arc<Document>>,
    /// The cache was deleted and Postgres may still have it: do not read it from there.
    pub deleted: bool,
}

/// The file tier's state.
pub struct FileTier {
    config: FileTierConfig,
    caches_dir: PathBuf,
    index: HashMap<CacheName, OnDisk>,
    /// Newest version known in Postgres per cache: new versions go above it.
    floors: HashMap<CacheName, u64>,
    /// Caches whose file was found corrupt and moved aside, until a new version is
    /// written: a reader is told why there is nothing (kept across actor restarts).
    quarantined: HashSet<CacheName>,
    reporter: FailureReporter,
    metrics: Arc<Metrics>,
}

fn now_stamp() -> String {
    Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string()
}

impl FileTier {
    /// A file tier over `config.data_dir` (created if missing; the index is built when
    /// the actor starts).
    pub fn new(config: FileTierConfig, reporter: FailureReporter, metrics: Arc<Metrics>) -> Self {
        let caches_dir = config.data_dir.join("caches");
        Self {
            config,
            caches_dir,
            index: HashMap::new(),
            floors: HashMap::new(),
            quarantined: HashSet::new(),
            reporter,
            metrics,
        }
    }

    /// Whether the file of `name` was found corrupt and nothing was written since.
    pub fn is_quarantined(&self, name: &CacheName) -> bool {
        self.quarantined.contains(name)
    }

    fn path_of(&self, name: &CacheName) -> PathBuf {
        self.caches_dir.join(format!("{name}.json"))
    }

    fn tombstone_of(&self, name: &CacheName) -> PathBuf {
        self.config.data_dir.join("tombstones").join(format!("{name}.json"))
    }

    /// Where the version of `name`'s last document deleted in Postgres is kept once its
    /// tombstone goes: read back into the floors at every start.
    fn deleted_of(&self, name: &CacheName) -> PathBuf {
        self.config.data_dir.join("deleted").join(format!("{name}.json"))
    }

    /// Rebuilds the index from the directory: verifies every envelope, moves corrupt
    /// ones aside, removes stray temp files, reads tombstones.
    ///
    /// # Errors
    /// When the directories cannot be created or listed.
    pub fn rebuild_index(&mut self) -> io::Result<()> {
        self.index.clear();
        self.floors.clear();
        for sub in ["caches", "tombstones", "corrupt", "deleted"] {
            std::fs::create_dir_all(self.config.data_dir.join(sub))?;
        }
        for entry in std::fs::read_dir(self.config.data_dir.join("deleted"))? {
            let path = entry?.path();
            let Some(name) = name_from_path(&path, ".json") else { continue };
            if let Some(version) = read_tombstone(&path) {
                let floor = self.floors.entry(name).or_insert(0);
                *floor = (*floor).max(version);
            }
        }
        let tombstones = self.config.data_dir.join("tombstones");
        for entry in std::fs::read_dir(&tombstones)? {
            let path = entry?.path();
            let Some(name) = name_from_path(&path, ".json") else { continue };
            if let Some(version) = read_tombstone(&path) {
                self.index.insert(name, OnDisk::tombstone(version));
            }
        }
        for entry in std::fs::read_dir(&self.caches_dir)? {
            let path = entry?.path();
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if file_name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(name) = name_from_path(&path, ".json") else { continue };
            if let Some(doc) = self.read_verified(&name)? {
                let floor = self.index.get(&name).map_or(0, |d| d.version);
                if doc.version > floor {
                    self.index.insert(name, OnDisk::of(&doc));
                }
            }
        }
        Ok(())
    }

    /// Reads and verifies one envelope. Corrupt files are moved aside and read as absent;
    /// another project's file stays in place and reads as absent.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn read_verified(&mut self, name: &CacheName) -> io::Result<Option<Document>> {
        let path = self.path_of(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = bytes::Bytes::from(bytes);
        match envelope::decode_bytes(&self.config.project, name, bytes.clone()) {
            Ok(doc) => Ok(Some(doc)),
            Err(EnvelopeError::WrongOwner { project, .. }) if project != self.config.project => {
                // Another project's file is not damage: it stays where it is, unserved.
                tracing::error!(
                    cache = %name, tier = "file", alert = true, file = %path.display(), found_project = %project,
                    project = %self.config.project,
                    "cache file belongs to another project; left in place and not served"
                );
                Ok(None)
            }
            Err(err) => {
                // Whatever version the damaged file claims stays a floor: versions never repeat.
                let claimed = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64))
                    .unwrap_or(0);
                let known = self.index.get(name).map_or(0, |d| d.version);
                let floor = self.floors.entry(name.clone()).or_insert(0);
                *floor = (*floor).max(claimed).max(known);
                self.quarantined.insert(name.clone());
                let aside = self.config.data_dir.join("corrupt").join(format!("{name}.{}.json", now_stamp()));
                let moved = std::fs::rename(&path, &aside);
                tracing::error!(
                    cache = %name, tier = "file", alert = true, error = %err,
                    moved_to = %aside.display(), moved = moved.is_ok(),
                    "corrupt cache file moved aside; it will not be served"
                );
                self.metrics
                    .corrupt_files
                    .get_or_create(&CacheResult { cache: name.to_string(), result: "moved" })
                    .inc();
                if let Some(d) = self.index.get_mut(name) {
                    d.etag = None;
                }
                Ok(None)
            }
        }
    }

    /// Writes a new version of `name` durably, after checking `precondition`.
    ///
    /// The version is above what is on disk and above `floor` (the newest version known
    /// elsewhere, e.g. in Postgres).
    ///
    /// # Errors
    /// [`FileTierError::PreconditionFailed`] or an I/O error (nothing changed then).
    pub fn write(
        &mut self,
        name: &CacheName,
        new: NewDocument,
        precondition: &Precondition,
        floor: u64,
    ) -> Result<Document, FileTierError> {
        let known = self.floors.get(name).copied().unwrap_or(0);
        let version = decide::next_version(self.index.get(name), floor.max(known), precondition)
            .map_err(|current| FileTierError::PreconditionFailed { current })?;
        let saved_at = Utc::now();
        // A PUT's last fetch is its save time; refreshes bring their own.
        let last_fetch = new.last_fetch.or(Some(saved_at));
        let doc =
            Document::new(name.clone(), version, new.checksum, last_fetch, new.last_rich_fetch, saved_at, new.body);
        self.put_document(&doc)?;
        Ok(doc)
    }

    /// Checks `precondition` like [`Self::write`] and reserves the version such a write
    /// would get, without writing: later local writes go above it. Returns that version
    /// and the live version the precondition was checked against (0: none). For a write
    /// that Postgres must accept first (`If-Match` across instances), adopted here after.
    ///
    /// # Errors
    /// [`FileTierError::PreconditionFailed`].
    pub fn reserve(&mut self, name: &CacheName, precondition: &Precondition) -> Result<(u64, u64), FileTierError> {
        let known = self.floors.get(name).copied().unwrap_or(0);
        let current = self.index.get(name);
        let version = decide::next_version(current, known, precondition)
            .map_err(|current| FileTierError::PreconditionFailed { current })?;
        let base = current.filter(|d| d.etag.is_some()).map_or(0, |d| d.version);
        self.floors.insert(name.clone(), version);
        Ok((version, base))
    }

    /// Stores `doc` as it is (a version made elsewhere, e.g. read from Postgres), unless
    /// the disk already holds that version or a newer one, or (with `expected`) the disk
    /// no longer holds version `expected`. Returns whether disk holds `doc` now: written,
    /// or already there with the same ETag (nothing written then). Either way later
    /// saves get versions above `doc`'s.
    ///
    /// # Errors
    /// I/O errors.
    pub fn adopt(&mut self, doc: &Document, expected: Option<u64>) -> io::Result<bool> {
        let floor = self.floors.entry(doc.name.clone()).or_insert(0);
        *floor = (*floor).max(doc.version);
        if decide::already_holds(self.index.get(&doc.name), doc.version, &doc.etag) {
            return Ok(true);
        }
        if !decide::adopts(self.index.get(&doc.name), doc.version, expected) {
            return Ok(false);
        }
        self.put_document(doc)?;
        Ok(true)
    }

    /// [`FileTier::adopt`] for several caches at once, each with its `expected` version,
    /// their durable writes batched: the directory is synced once for all of them
    /// ([`durable::write_atomic_all`]). One answer per document, in order. A cache named
    /// twice keeps the first and answers `false` for the other (the startup sync never
    /// names one twice).
    pub fn adopt_all(&mut self, docs: &[(Arc<Document>, Option<u64>)]) -> Vec<io::Result<bool>> {
        let mut seen = HashSet::new();
        let chosen: Vec<bool> = docs
            .iter()
            .map(|(doc, expected)| {
                let floor = self.floors.entry(doc.name.clone()).or_insert(0);
                *floor = (*floor).max(doc.version);
                seen.insert(&doc.name) && decide::adopts(self.index.get(&doc.name), doc.version, *expected)
            })
            .collect();
        let written: Vec<&Arc<Document>> = docs.iter().zip(&chosen).filter(|(_, c)| **c).map(|((d, _), _)| d).collect();
        let paths: Vec<PathBuf> = written.iter().map(|d| self.path_of(&d.name)).collect();
        let bytes: Vec<Vec<u8>> = written.iter().map(|d| envelope::encode(&self.config.project, d)).collect();
        let files: Vec<(&Path, &[u8])> =
            paths.iter().map(PathBuf::as_path).zip(bytes.iter().map(Vec::as_slice)).collect();
        let mut results = durable::write_atomic_all(&self.caches_dir, &files).into_iter();
        chosen
            .iter()
            .zip(docs)
            .map(|(chosen, (doc, _))| {
                if !chosen {
                    return Ok(false);
                }
                let result = results.next().unwrap_or_else(|| Err(io::Error::other("no result for a batched write")));
                self.after_write(doc, result).map(|()| true)
            })
            .collect()
    }

    /// Rewrites the envelope of `doc.version` with `doc`'s fetch times, if disk still
    /// holds that version with that checksum (see [`messages::TouchFile`]).
    ///
    /// # Errors
    /// I/O errors.
    pub fn touch(&mut self, doc: &Document) -> io::Result<bool> {
        if !decide::touches(self.index.get(&doc.name), doc.version, &doc.etag) {
            return Ok(false);
        }
        self.put_document(doc)?;
        Ok(true)
    }

    /// Writes `doc`'s envelope and keeps the index equal to what is on disk: unchanged
    /// when the write failed before its rename (the old version is still there and
    /// served), the new version once the rename happened, even if a later step failed.
    fn put_document(&mut self, doc: &Document) -> io::Result<()> {
        let bytes = envelope::encode(&self.config.project, doc);
        let result = durable::write_atomic(&self.path_of(&doc.name), &bytes);
        self.after_write(doc, result)
    }

    /// The index, the metrics and the tombstone after the durable write of `doc`'s
    /// envelope answered `result` (see [`FileTier::put_document`]).
    fn after_write(&mut self, doc: &Document, result: io::Result<()>) -> io::Result<()> {
        if let Err(e) = result {
            self.count_write_error(&doc.name, &e);
            if durable::in_place(&e) {
                self.index.insert(doc.name.clone(), OnDisk::of(doc));
            }
            return Err(e);
        }
        self.index.insert(doc.name.clone(), OnDisk::of(doc));
        self.quarantined.remove(&doc.name);
        let tomb = self.tombstone_of(&doc.name);
        if tomb.exists() {
            std::fs::remove_file(&tomb)?;
        }
        Ok(())
    }

    /// Counts a failed durable write in `tiercache_file_write_errors_total`.
    fn count_write_error(&self, name: &CacheName, err: &io::Error) {
        let kind = durable::kind_label(err);
        self.metrics.file_write_errors.get_or_create(&CacheKind { cache: name.to_string(), kind }).inc();
    }

    /// Deletes `name`'s envelope, leaving a tombstone with its last version.
    /// Returns whether there was anything to delete.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove(&mut self, name: &CacheName) -> io::Result<bool> {
        // A tombstone even for a cache unknown here: Postgres may hold a row of it. Its
        // version is the newest known here (a row adopted or reserved counts): the delete
        // reaches no row newer than that.
        let (version, existed) = decide::tombstone(self.index.get(name));
        let version = version.max(self.floors.get(name).copied().unwrap_or(0));
        let tomb = serde_json::json!({
            "name": name.as_str(),
            "version": version,
            "deleted_at": Utc::now().to_rfc3339(),
        });
        // Once the tombstone is on disk the cache reads as deleted (also after a restart),
        // whatever fails after that.
        if let Err(e) = durable::write_atomic(&self.tombstone_of(name), tomb.to_string().as_bytes()) {
            self.count_write_error(name, &e);
            if durable::in_place(&e) {
                self.index.insert(name.clone(), OnDisk::tombstone(version));
            }
            return Err(e);
        }
        self.index.insert(name.clone(), OnDisk::tombstone(version));
        match std::fs::remove_file(self.path_of(name)) {
            Ok(()) => durable::sync_dir(&self.caches_dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(existed)
    }

    /// Drops the tombstone of `name` once Postgres has the delete, unless the cache was
    /// saved again since. Returns whether a tombstone was removed. Its version stays a
    /// floor, also across restarts (`data_dir/deleted/`): a save after the delete must
    /// not take the deleted version again, or another instance that knew the deleted
    /// document at that version would take the new one for it (and write over it), and
    /// the audited delete would match it too.
    ///
    /// # Errors
    /// I/O errors.
    pub fn forget_tombstone(&mut self, name: &CacheName) -> io::Result<bool> {
        let Some(tombstone) = self.index.get(name).filter(|d| decide::forgets_tombstone(Some(d))) else {
            return Ok(false);
        };
        let version = tombstone.version;
        // The version first, durably: a crash before it leaves the tombstone alone (the
        // next start reads it again), a crash after it both; never neither. A full disk
        // keeps the tombstone too: the cache reads as deleted here until it can go.
        let deleted = serde_json::json!({ "name": name.as_str(), "version": version });
        durable::write_atomic(&self.deleted_of(name), deleted.to_string().as_bytes())?;
        match std::fs::remove_file(self.tombstone_of(name)) {
            Ok(()) => durable::sync_dir(&self.config.data_dir.join("tombstones"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let floor = self.floors.entry(name.clone()).or_insert(0);
        *floor = (*floor).max(version);
        self.index.remove(name);
        Ok(true)
    }

    /// Retention: removes `name`'s envelope if it was saved before `cutoff`, leaving no
    /// tombstone (unlike a DELETE, it sends nothing to Postgres, where the row has its
    /// own retention). Checked here, where saves are serialised, so a save made since
    /// the caller looked is never purged. Returns the purged envelope's save time.
    ///
    /// # Errors
    /// I/O errors.
    pub fn purge_older(&mut self, name: &CacheName, cutoff: DateTime<Utc>) -> io::Result<Option<DateTime<Utc>>> {
        if self.index.get(name).is_none_or(|d| d.etag.is_none()) {
            return Ok(None);
        }
        let Some(doc) = self.read_verified(name)? else { return Ok(None) };
        if doc.saved_at >= cutoff {
            return Ok(None);
        }
        match std::fs::remove_file(self.path_of(name)) {
            Ok(()) => durable::sync_dir(&self.caches_dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Versions never repeat, even for a cache configured again later.
        let floor = self.floors.entry(name.clone()).or_insert(0);
        *floor = (*floor).max(doc.version);
        self.index.remove(name);
        Ok(Some(doc.saved_at))
    }

    /// Whether `name` is deleted locally (its tombstone awaits Postgres).
    pub fn is_deleted(&self, name: &CacheName) -> bool {
        self.index.get(name).is_some_and(|d| d.deleted)
    }

    /// The index: what is on disk per cache.
    pub fn index(&self) -> &HashMap<CacheName, OnDisk> {
        &self.index
    }
}

fn name_from_path(path: &Path, suffix: &str) -> Option<CacheName> {
    let file_name = path.file_name()?.to_str()?;
    CacheName::parse(file_name.strip_suffix(suffix)?).ok()
}

fn read_tombstone(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("version")?.as_u64()
}

// Their faults are injected with the durable write's failpoints.
#[cfg(all(test, feature = "failpoints"))]
mod tests;
