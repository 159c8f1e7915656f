//! `tiercache restore DIR [--force]`: brings back the envelopes of an `export` (or a copy
//! of `data_dir/caches/`).
//!
//! After the lock is taken, every `DIR/*.json` is read and verified (format, name,
//! version, checksum) before anything is written; one bad file stops the restore with
//! nothing changed. The cache is the one named inside the envelope. An envelope of another project is accepted and
//! becomes this project's (moving caches between projects is a use of restore).
//! Caches that are not configured here are skipped. Every envelope of a configured cache
//! is admitted by that cache's rules (`max_size`, nesting depth, JSON Schema) like a PUT
//! or an import; one that fails them stops the restore with nothing changed (exit 65).
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
use tiercache_actors::cache_rules::{Admitted, Refusal, Refused};
use tiercache_actors::domain::{envelope, CacheName, Document, Precondition};
use tiercache_actors::save_flow::SaveFlow;

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
    refuse_if_any(&problems, &format!("files in {shown} are not valid envelopes"))?;
    Ok(backups)
}

/// Exit 65 when anything is wrong: one problem in one line, several each on standard
/// error and a count.
fn refuse_if_any(problems: &[String], what: &str) -> Result<(), Fatal> {
    match problems.len() {
        0 => Ok(()),
        1 => Err(Fatal::new(DATAERR, format!("restore: {}; nothing restored", problems[0]))),
        n => {
            for p in problems {
                eprintln!("restore: {p}");
            }
            Err(Fatal::new(DATAERR, format!("restore: {n} {what}; nothing restored")))
        }
    }
}

/// Admits every backup of a configured cache by that cache's rules (size, depth,
/// schema), as a PUT or an import would be: a backup the daemon would refuse to serve
/// stops the restore with nothing written. `None`: the cache is not configured here.
fn admit_all(saver: &SaveFlow, backups: BTreeMap<CacheName, Backup>) -> Result<Vec<(Backup, Option<Admitted>)>, Fatal> {
    let mut admitted = Vec::new();
    let mut problems = Vec::new();
    for (name, backup) in backups {
        match saver.admit(&name, &backup.doc.body) {
            Ok(doc) => admitted.push((backup, Some(doc))),
            Err(Refusal::NotConfigured) => admitted.push((backup, None)),
            Err(refusal) => {
                let shown = backup.path.display().to_string();
                problems.push(refusal.worded(Refused::File { shown: &shown, cache: name.as_str() }));
            }
        }
    }
    refuse_if_any(&problems, "backups fail their cache's rules")?;
    Ok(admitted)
}

/// Runs `restore`.
///
/// # Errors
/// 66 for a missing or empty directory, 65 for a file that is not a valid envelope
/// (nothing is restored then), 69 when Postgres is enabled but cannot be read (without
/// `--force`), 73 for the lock or a failed write.
pub(crate) fn restore(settings: &Settings, dir: &Path, force: bool) -> Result<(), Fatal> {
    run_offline(settings, |offline| async move {
        // Read after the lock, before anything is written.
        let backups = read_backups(dir)?;
        if offline.postgres_enabled && !offline.postgres_synced && !force {
            return Err(Fatal::new(
                UNAVAILABLE,
                "restore: Postgres is enabled but could not be read, so the current versions are unknown; \
                 nothing restored (try again once it answers, or use --force)",
            ));
        }
        let saver = &offline.saver;
        let backups = admit_all(saver, backups)?;
        let index =
            saver.files().list().await.map_err(|e| Fatal::new(UNAVAILABLE, format!("restore: the file tier: {e}")))?;
        let (mut restored, mut skipped) = (0, 0);
        for (backup, doc) in backups {
            let (name, from) = (backup.doc.name.clone(), backup.doc.version);
            let Some(doc) = doc else {
                println!("{name}: not configured here, skipped");
                skipped += 1;
                continue;
            };
            let live = index.get(&name).filter(|d| d.etag.is_some());
            let current = live.map(|d| d.version);
            // Conditional on the version compared with the backup's: never over another.
            let base = match live.and_then(|d| d.etag.clone()) {
                Some(etag) => Precondition::OneOf(vec![etag]),
                None => Precondition::Absent,
            };
            if let Some(current) = current.filter(|c| *c >= from && !force) {
                println!("{name}: current version {current} >= backup {from}, skipped (use --force)");
                skipped += 1;
                continue;
            }
            let doc = doc.with_fetch_times(backup.doc.last_fetch, backup.doc.last_rich_fetch);
            // Floor `from - 1`: the backup's own version when nothing newer is known.
            let saved = saver
                .save(&name, doc, base, from - 1)
                .await
                .map_err(|e| Fatal::new(CANTCREAT, format!("restore: {name}: {e}")))?;
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
