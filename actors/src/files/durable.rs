//! Durable, atomic file replacement: temp file, fsync, rename, fsync of the directory.
//!
//! A write that fails at any step before the rename removes its temporary file, so a
//! disk filled by one failed write is free again at once (and not only at the next start).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The step of a durable write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the temporary file.
    Create,
    /// Writing the bytes into it.
    Write,
    /// `fsync` of the temporary file.
    Sync,
    /// Renaming it over the target.
    Rename,
    /// `fsync` of the directory after the rename: the new content is in place (and
    /// readable) but may not survive a power loss.
    SyncDir,
}

impl Step {
    /// Name of the step in error messages and of its failpoint (`durable::NAME`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Write => "write",
            Self::Sync => "fsync",
            Self::Rename => "rename",
            Self::SyncDir => "fsync_dir",
        }
    }

    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    fn failpoint(self) -> &'static str {
        match self {
            Self::Create => "durable::create",
            Self::Write => "durable::write",
            Self::Sync => "durable::fsync",
            Self::Rename => "durable::rename",
            Self::SyncDir => "durable::fsync_dir",
        }
    }
}

/// A failed durable write: which step, and the I/O error. It travels inside the
/// `io::Error` that [`write_atomic`] returns (same kind); [`failure_of`] gets it back.
#[derive(Debug)]
pub struct WriteFailure {
    /// The step that failed.
    pub step: Step,
    /// What the OS said.
    pub source: io::Error,
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "durable write failed at {}: {}", self.step.as_str(), self.source)
    }
}

impl std::error::Error for WriteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The [`WriteFailure`] inside an error returned by [`write_atomic`], if it is one.
pub fn failure_of(err: &io::Error) -> Option<&WriteFailure> {
    err.get_ref().and_then(|e| e.downcast_ref::<WriteFailure>())
}

/// Whether the new content is in place despite the error (only the directory's `fsync`
/// after the rename failed): the caller's view of the disk must then follow it.
pub fn in_place(err: &io::Error) -> bool {
    failure_of(err).is_some_and(|f| f.step == Step::SyncDir)
}

/// The error kind of a failed write as a metric label: `no_space` (disk full or quota),
/// `read_only`, `permission` or `io` (anything else).
pub fn kind_label(err: &io::Error) -> &'static str {
    let kind = failure_of(err).map_or(err.kind(), |f| f.source.kind());
    match kind {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "no_space",
        io::ErrorKind::ReadOnlyFilesystem => "read_only",
        io::ErrorKind::PermissionDenied => "permission",
        _ => "io",
    }
}

/// Replaces `path` with `bytes` so that after a crash or power loss either the old or the
/// new content is there, never a mix, and once this returns the new content survives.
///
/// # Errors
/// Any I/O error, carrying a [`WriteFailure`] that names the step. Before the rename the
/// old file is untouched and the temporary file is removed; at [`Step::SyncDir`] the new
/// content is already in place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file created with `mode` (e.g. 0600 for secrets), so the
/// content is never readable by others, not even for a moment.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let tmp = temp_of(path);
    let replaced = write_temp(&tmp, bytes, mode).and_then(|()| step(Step::Rename, &tmp, || fs::rename(&tmp, path)));
    if let Err((at, source)) = replaced {
        // Created or not, the temporary file must not outlive the failure: it may hold
        // the very space whose lack made the write fail.
        let _ = fs::remove_file(&tmp);
        return Err(failed(at, source));
    }
    step(Step::SyncDir, &tmp, || sync_dir(dir)).map_err(|(step, source)| failed(step, source))
}

/// [`write_atomic`] for several files of one directory, with the directory synced once
/// for all of them: every temporary file is written, then all of them are synced at
/// once (one thread each, so the disk takes their writes together instead of one
/// after the other), then each is renamed over its target, then the directory is
/// synced. After a crash at any moment each target holds its old or its new content,
/// whole, as with [`write_atomic`]; once this returns, the new content of every `Ok`
/// survives. Answers one result per file, in order: a file that failed before its
/// rename keeps its old content and leaves no temporary file; a failed directory sync
/// fails every renamed file at [`Step::SyncDir`] (in place, like [`write_atomic`]'s).
///
/// The targets must be distinct files of `dir`.
pub fn write_atomic_all(dir: &Path, files: &[(&Path, &[u8])]) -> Vec<io::Result<()>> {
    let temps: Vec<_> = files.iter().map(|(path, _)| temp_of(path)).collect();
    let written: Vec<_> = files.iter().zip(&temps).map(|((_, bytes), tmp)| create_temp(tmp, bytes, 0o644)).collect();
    let mut steps = sync_all(written, &temps);
    for (((path, _), tmp), result) in files.iter().zip(&temps).zip(&mut steps) {
        if result.is_ok() {
            *result = step(Step::Rename, tmp, || fs::rename(tmp, path));
        }
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
    }
    let renamed = steps.iter().any(Result::is_ok);
    let synced = if renamed { sync_dir(dir).map_err(|e| (e.kind(), e.to_string())) } else { Ok(()) };
    steps
        .into_iter()
        .zip(&temps)
        .map(|(result, tmp)| {
            let (at, source) = match result {
                Err(failure) => failure,
                // Each file's own failpoint, as with `write_atomic`; the sync is shared.
                Ok(()) => match injected(Step::SyncDir, tmp) {
                    Err(e) => (Step::SyncDir, e),
                    Ok(()) => match &synced {
                        Ok(()) => return Ok(()),
                        Err((kind, text)) => (Step::SyncDir, io::Error::new(*kind, text.clone())),
                    },
                },
            };
            Err(failed(at, source))
        })
        .collect()
}

/// Syncs each written temporary file, all at once: one thread per file, the calling
/// thread syncing the last one (and, through a new descriptor of the same file, any
/// whose thread could not be made).
fn sync_all(written: Vec<Result<File, (Step, io::Error)>>, temps: &[PathBuf]) -> Vec<Result<(), (Step, io::Error)>> {
    let sync = |f: &File, tmp: &Path| step(Step::Sync, tmp, || f.sync_all());
    let last = written.iter().rposition(Result::is_ok);
    std::thread::scope(|scope| {
        let started: Vec<Synced<'_>> = written
            .into_iter()
            .zip(temps)
            .enumerate()
            .map(|(i, (file, tmp))| match file {
                Err(failure) => Synced::Done(Err(failure)),
                Ok(f) if Some(i) == last => Synced::Here(f),
                Ok(f) => std::thread::Builder::new()
                    .name("fsync".into())
                    .spawn_scoped(scope, move || sync(&f, tmp))
                    .map_or(Synced::Reopen, Synced::Thread),
            })
            .collect();
        started
            .into_iter()
            .zip(temps)
            .map(|(started, tmp)| match started {
                Synced::Done(result) => result,
                Synced::Here(f) => sync(&f, tmp),
                Synced::Reopen => step(Step::Sync, tmp, || File::open(tmp)?.sync_all()),
                Synced::Thread(handle) => {
                    handle.join().unwrap_or_else(|_| Err((Step::Sync, io::Error::other("fsync thread panicked"))))
                }
            })
            .collect()
    })
}

/// Where the sync of one temporary file of a batch stands.
enum Synced<'scope> {
    /// Failed before (create or write), or synced.
    Done(Result<(), (Step, io::Error)>),
    /// To sync on the calling thread.
    Here(File),
    /// Syncing on its own thread.
    Thread(std::thread::ScopedJoinHandle<'scope, Result<(), (Step, io::Error)>>),
    /// No thread could be made: synced on the calling thread, opened again.
    Reopen,
}

/// The temporary file next to `path` that [`write_atomic`] renames over it.
fn temp_of(path: &Path) -> std::path::PathBuf {
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    path.with_file_name(tmp_name)
}

/// Creates `tmp` with `bytes` and syncs it.
fn write_temp(tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), (Step, io::Error)> {
    let f = create_temp(tmp, bytes, mode)?;
    step(Step::Sync, tmp, || f.sync_all())
}

/// Creates `tmp` with `bytes`, not yet synced.
fn create_temp(tmp: &Path, bytes: &[u8], mode: u32) -> Result<File, (Step, io::Error)> {
    use std::os::unix::fs::OpenOptionsExt;
    let create = || OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp);
    // A temporary file is only there after a crash mid-write: removed then, and only
    // then, so a save does not pay a failing `unlink` every time.
    let mut f = step(Step::Create, tmp, || match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(tmp).and_then(|()| create()),
        other => other,
    })?;
    step(Step::Write, tmp, || f.write_all(bytes))?;
    Ok(f)
}

/// Runs one step (after its failpoint) and tags its error with the step.
fn step<T>(step: Step, tmp: &Path, op: impl FnOnce() -> io::Result<T>) -> Result<T, (Step, io::Error)> {
    injected(step, tmp).and_then(|()| op()).map_err(|e| (step, e))
}

fn failed(step: Step, source: io::Error) -> io::Error {
    io::Error::new(source.kind(), WriteFailure { step, source })
}

/// The failpoint `durable::STEP` (feature `failpoints`). `return` fails every durable
/// write at that step; `return(PREFIX)` only those whose temporary file's name starts
/// with PREFIX (e.g. `return(strava.json)`), so one cache can be made to fail.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn injected(step: Step, tmp: &Path) -> io::Result<()> {
    fail::fail_point!(step.failpoint(), |prefix: Option<String>| {
        let name = tmp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if prefix.is_none_or(|p| name.starts_with(&p)) {
            Err(io::Error::other(format!("injected by failpoint {}", step.failpoint())))
        } else {
            Ok(())
        }
    });
    Ok(())
}

/// Makes a rename or unlink in `dir` durable.
///
/// # Errors
/// The I/O error of opening or syncing the directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
