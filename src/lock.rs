//! The `data_dir` lock: one running instance per data directory (exit 73 otherwise).

use crate::exit::{Fatal, CANTCREAT};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

/// Held for the life of the process; the OS releases it on exit, even after `kill -9`.
/// The file holds the holder's PID while it runs; a clean stop empties it, so a PID
/// found there after a stop is from a process that was killed.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    file: File,
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Still locked while emptied: no other instance can have written its PID yet.
        let _ = self.file.set_len(0);
    }
}

impl DataDirLock {
    /// Creates `data_dir` if needed and takes its lock.
    ///
    /// # Errors
    /// Exit 73 when the directory cannot be created or written, or another instance
    /// holds the lock.
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self, Fatal> {
        let shown = data_dir.display();
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Fatal::new(CANTCREAT, format!("data directory {shown} cannot be created: {e}")))?;
        let path = data_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Fatal::new(CANTCREAT, format!("data directory {shown} is not writable: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                return Err(Fatal::new(
                    CANTCREAT,
                    format!("data directory {shown} is locked by another running instance{pid}"),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Fatal::new(CANTCREAT, format!("data directory {shown} cannot be locked: {e}")))
            }
        }
        file.set_len(0)
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(|e| Fatal::new(CANTCREAT, format!("data directory {shown} is not writable: {e}")))?;
        // A directory that refuses new files is as good as unwritable: check now, not at the first save.
        let probe = data_dir.join(".write-probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| Fatal::new(CANTCREAT, format!("data directory {shown} is not writable: {e}")))?;
        Ok(Self { file })
    }
}
