//! `tiercache restore DIR [--force]`: brings back the envelopes of an `export` (or a copy
//! of `data_dir/caches/`).
//!
//! After the lock is taken, every `DIR/*.json` is read and verified (format, name,
//! version, checksum) before anything is written; one bad file stops the restore with
//! nothing changed. The cache is the one named inside the envelope. An envelope of another project is accepted and
//! becomes this project's (moving caches between projects is a use of restore).
//! Caches that are not configured here are skipped.
//!
//! A restore never moves a cache to a lower version number. When the cache is absent or
//! older than the backup, the backup is written at its own version number (so ETags
//! held by clients stay meaningful) or, when a tombstone or Postgres knows a higher one,
//! above that. When the cache already has the backup's version or a newer one, it is
//! skipped unless `--force`, which writes the backup's content as a new version above
//! the current one. With Postgres enabled the current versions include Postgres's rows
//! (the startup sync runs first); when Postgres cannot be read they are unknown, and
//! the restore refuses to guess unless `--force`.

use super::{run_offline, DATAERR, NOINPUT};
use crate::config::Settings;
use crate::exit::{Fatal, CANTCREAT, UNAVAILABLE};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tiercache_actors::domain::{envelope, CacheName, Document, NewDocument, Precondition};

/// One verified envelope of the backup.
struct Backup {
    path: PathBuf,
    project: String,
    doc: Document,
}

/// The owner fields of an envelope, read before the envelope is verified as theirs.
#[derive(Deserialize)]
struct Owner {
    project: String,
    name: String,
}

fn read_one(path: &Path) -> Result<Backup, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let owner: Owner = serde_json::from_slice(&bytes).map_err(|e| format!("not an envelope: {e}"))?;
    let name = CacheName::parse(&owner.name).map_err(|e| format!("bad cache name {:?}: {e}", owner.name))?;
    let doc = envelope::decode(&owner.project, &name, &bytes).map_err(|e| e.to_string())?;
    Ok(Backup { path: path.to_path_buf(), project: owner.project, doc })
}

/// Reads and verifies every `*.json` of `dir`, by cache name.
fn read_backups(dir: &Path) -> Result<BTreeMap<CacheName, Backup>, Fatal> {
    let shown = dir.display();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Fatal::new(NOINPUT, format!("restore: cannot read {shown}: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Fatal::new(NOINPUT, format!("restore: cannot read {shown}: {e}")))?.path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(Fatal::new(NOINPUT, format!("restore: {shown} holds no *.json envelope files")));
    }
    let mut backups: BTreeMap<CacheName, Backup> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in paths {
        match read_one(&path) {
            Ok(b) => {
                if let Some(other) = backups.get(&b.doc.name) {
                    problems.push(format!(
                        "{}: a second envelope of cache {} (also in {})",
                        path.display(),
                        b.doc.name,
                        other.path.display()
                    ));
                } else {
                    backups.insert(b.doc.name.clone(), b);
                }
            }
            Err(problem) => problems.push(format!("{}: {problem}", path.display())),
        }
    }
    match problems.len() {
        0 => Ok(backups),
        1 => Err(Fatal::new(DATAERR, format!("restore: {}; nothing restored", problems[0]))),
        n => {
            for p in &problems {
                eprintln!("restore: {p}");
            }
            Err(Fatal::new(DATAERR, format!("restore: {n} files in {shown} are not valid envelopes; nothing restored")))
        }
    }
}

/// Runs `restore`.
///
/// # Errors
/// 66 for a missing or empty directory, 65 for a file that is not a valid envelope
/// (nothing is restored then), 69 when Postgres is enabled but cannot be read (without
/// `--force`), 73 for the lock or a failed write.
pub fn restore(settings: &Settings, dir: &Path, force: bool) -> Result<(), Fatal> {
    run_offline(settings, |offline| async move {
        // Read after the lock, before anything is written.
        let backups = read_backups(dir)?;
        if offline.tiers.store().is_some() && !offline.postgres_synced && !force {
            return Err(Fatal::new(
                UNAVAILABLE,
                "restore: Postgres is enabled but could not be read, so the current versions are unknown; \
                 nothing restored (try again once it answers, or use --force)",
            ));
        }
        let files = offline.tiers.files();
        let index = files.list().await.map_err(|e| Fatal::new(UNAVAILABLE, format!("restore: the file tier: {e}")))?;
        let (mut restored, mut skipped) = (0, 0);
        for (name, backup) in backups {
            let from = backup.doc.version;
            if !settings.caches.iter().any(|c| c.name == name) {
                println!("{name}: not configured here, skipped");
                skipped += 1;
                continue;
            }
            let current = index.get(&name).filter(|d| d.etag.is_some()).map(|d| d.version);
            if let Some(current) = current.filter(|c| *c >= from && !force) {
                println!("{name}: current version {current} >= backup {from}, skipped (use --force)");
                skipped += 1;
                continue;
            }
            let doc = NewDocument {
                body: backup.doc.body.clone(),
                checksum: backup.doc.checksum,
                last_fetch: backup.doc.last_fetch,
                last_rich_fetch: backup.doc.last_rich_fetch,
            };
            // Floor `from - 1`: the backup's own version when nothing newer is known.
            let saved = files
                .write(name.clone(), doc, Precondition::None, from - 1)
                .await
                .map_err(|e| Fatal::new(CANTCREAT, format!("restore: {name}: {e}")))?;
            if let Some(queue) = offline.tiers.queue() {
                queue.enqueue_write(name.clone(), saved.version);
            }
            let moved = if backup.project == settings.project {
                String::new()
            } else {
                format!(", from project {:?}", backup.project)
            };
            println!("restored {name} version {} (backup version {from}{moved})", saved.version);
            restored += 1;
        }
        println!("restore: {restored} restored, {skipped} skipped");
        Ok(())
    })
}
