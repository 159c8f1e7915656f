//! `tiercache export DIR`: every cache's current envelope, verified, as `DIR/NAME.json`.
//!
//! The files are the envelopes of docs/envelope.md, exactly as the file tier keeps them, so
//! `restore` reads an export and a copy of `data_dir/caches/` alike. With Postgres
//! enabled the startup sync runs first, so an export taken after losing `data_dir`
//! still holds what Postgres has. Every cache on disk is exported, configured or not
//! (a backup should be whole; `restore` skips what is not configured). Existing files
//! are never overwritten: the export refuses a directory that already holds a file it
//! would write, before writing anything.

use super::{run_offline, DATAERR};
use crate::config::Settings;
use crate::exit::{Fatal, CANTCREAT, UNAVAILABLE};
use std::path::Path;
use tiercache_actors::domain::envelope;
use tiercache_actors::files::durable;

/// Runs `export`.
///
/// # Errors
/// 73 for the lock, a directory that cannot be written or already holds an export;
/// 65 when a cache's file turned out corrupt (the others are exported).
pub(crate) fn export(settings: &Settings, dir: &Path) -> Result<(), Fatal> {
    let shown = dir.display();
    run_offline(settings, |offline| async move {
        let files = offline.saver.files();
        let index = files.list().await.map_err(|e| Fatal::new(UNAVAILABLE, format!("export: the file tier: {e}")))?;
        let mut names: Vec<_> = index.iter().filter(|(_, d)| d.etag.is_some()).map(|(n, _)| n.clone()).collect();
        names.sort();
        std::fs::create_dir_all(dir)
            .map_err(|e| Fatal::new(CANTCREAT, format!("export: cannot create {shown}: {e}")))?;
        let clashes: Vec<String> =
            names.iter().map(|n| format!("{n}.json")).filter(|f| dir.join(f).symlink_metadata().is_ok()).collect();
        if !clashes.is_empty() {
            return Err(Fatal::new(
                CANTCREAT,
                format!("export: {shown} already holds {}; export into a new or empty directory", clashes.join(", ")),
            ));
        }
        let mut missing = Vec::new();
        for name in &names {
            let lookup =
                files.read(name.clone()).await.map_err(|e| Fatal::new(UNAVAILABLE, format!("export: {name}: {e}")))?;
            let Some(doc) = lookup.doc else {
                eprintln!("export: {name}: the file is corrupt or gone (see the log); not exported");
                missing.push(name.to_string());
                continue;
            };
            let path = dir.join(format!("{name}.json"));
            durable::write_atomic(&path, &envelope::encode(&settings.project, &doc))
                .map_err(|e| Fatal::new(CANTCREAT, format!("export: cannot write {}: {e}", path.display())))?;
            println!("exported {name} version {}", doc.version);
        }
        println!("exported {} cache(s) to {shown}", names.len() - missing.len());
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Fatal::new(DATAERR, format!("export: not exported (corrupt): {}", missing.join(", "))))
        }
    })
}
