//! The project a `data_dir` belongs to, recorded in `data_dir/project`.
//!
//! A daemon or an offline command started with another `project` (an env file not
//! loaded, a second service pointed at the same directory) would otherwise read every
//! cache file as someone else's. It is refused before anything is touched (exit 78),
//! naming both projects.

use crate::exit::{Fatal, CANTCREAT, CONFIG};
use std::io::Write;
use std::path::Path;

/// The file, inside `data_dir`, that names its project.
pub(crate) const RECORD: &str = "project";

/// Checks that `data_dir` belongs to `project`, and records it when nothing is recorded
/// yet. Call with the `data_dir` lock held.
///
/// A directory without the record (made before it existed) adopts `project`, unless a
/// cache file in it names another project: then it is refused like a record would be.
///
/// # Errors
/// Exit 78 when the directory belongs to another project; exit 73 when the record
/// cannot be read or written.
pub(crate) fn claim(data_dir: &Path, project: &str) -> Result<(), Fatal> {
    let path = data_dir.join(RECORD);
    let shown = data_dir.display();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded = text.trim_end_matches('\n');
            if recorded == project {
                return Ok(());
            }
            Err(refusal(data_dir, recorded, project, &format!("recorded in {}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(other) = foreign_envelope(data_dir, project) {
                return Err(refusal(data_dir, &other, project, "named by its cache files"));
            }
            write_record(data_dir, project)
                .map_err(|e| Fatal::new(CANTCREAT, format!("data directory {shown} is not writable: {e}")))
        }
        Err(e) => Err(Fatal::new(CANTCREAT, format!("data directory {shown}: cannot read {}: {e}", path.display()))),
    }
}

fn refusal(data_dir: &Path, recorded: &str, project: &str, how: &str) -> Fatal {
    Fatal::new(
        CONFIG,
        format!(
            "config error: project: data directory {} belongs to project {recorded:?} ({how}), not {project:?}; \
             start with project = {recorded:?} (PROJECT_ID) or use another data_dir",
            data_dir.display()
        ),
    )
}

/// The project named by the first cache file that names one other than `project`.
fn foreign_envelope(data_dir: &Path, project: &str) -> Option<String> {
    let entries = std::fs::read_dir(data_dir.join("caches")).ok()?;
    entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).find_map(
        |p| {
            let bytes = std::fs::read(p).ok()?;
            let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            let named = value.get("project")?.as_str()?;
            (named != project).then(|| named.to_owned())
        },
    )
}

/// Temp file, fsync, rename, fsync of the directory: the record is never half written.
fn write_record(data_dir: &Path, project: &str) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{RECORD}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{project}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(RECORD))?;
    std::fs::File::open(data_dir)?.sync_all()
}
