//! Back-dating a cache file for retention tests: the envelope's `saved_at` is rewritten
//! in place. The checksum covers the document only, so the file stays valid.

use chrono::{Duration, SecondsFormat, Utc};
use std::path::Path;

/// Sets the `saved_at` of the envelope at `path` to `days` days ago. Panics when the
/// file cannot be read or has no `saved_at`.
pub fn backdate(path: &Path, days: i64) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    const KEY: &str = "\"saved_at\":\"";
    let start = text.find(KEY).unwrap_or_else(|| panic!("no saved_at in {}", path.display())) + KEY.len();
    let end = start + text[start..].find('"').expect("end of saved_at");
    let when = (Utc::now() - Duration::days(days)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let rewritten = format!("{}{when}{}", &text[..start], &text[end..]);
    std::fs::write(path, rewritten).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The `saved_at` of the envelope at `path`, as written.
pub fn saved_at(path: &Path) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    value.get("saved_at")?.as_str().map(str::to_owned)
}
