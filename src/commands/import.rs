//! `tiercache import NAME FILE`: an existing JSON document (the old app's cache file,
//! `{"timestamp": ..., "activities": [...]}`) becomes the next version of cache NAME.
//!
//! The document is admitted by the cache's rules like a PUT's body (depth, canonical
//! form, `max_size`, JSON Schema), before the data directory is locked. Its fetch time comes from its top-level `last_fetch`, else `timestamp`
//! (RFC 3339; a date-time without an offset, as Python's `isoformat()` writes it, is
//! taken as UTC; or a number of unix seconds); `last_rich_fetch` likewise. Without
//! either, the import's own time is the fetch time, as for a PUT.

use super::{configured, run_offline, DATAERR, NOINPUT};
use crate::config::Settings;
use crate::exit::{Fatal, CANTCREAT};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use std::path::Path;
use tiercache_actors::cache_rules::{Refusal, Refused};
use tiercache_actors::domain::Precondition;

/// How far in the future a fetch time may lie (clock skew); further is refused, since
/// it would push the cache's next refresh out by as much.
const MAX_FUTURE: chrono::Duration = chrono::Duration::minutes(5);

/// Runs `import`.
///
/// # Errors
/// 64 for a name that is not configured, 66 for an unreadable file, 65 for a document
/// that is not JSON, too large, fails the cache's JSON Schema or has a bad fetch time,
/// 78 for a schema that cannot be loaded, 73 for the lock or a failed write.
pub(crate) fn import(settings: &Settings, name: &str, file: &Path) -> Result<(), Fatal> {
    let cache = configured(settings, "import", name)?;
    let shown = file.display();
    let raw = std::fs::read(file).map_err(|e| Fatal::new(NOINPUT, format!("import: cannot read {shown}: {e}")))?;
    let rules = crate::wiring::cache_rules(settings)?;
    let doc = rules.admit(&cache.name, &raw).map_err(|refusal| refused(&shown.to_string(), name, refusal))?;
    let value: Value = serde_json::from_slice(&doc.doc().body).expect("canonical JSON parses");
    let now = Utc::now();
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, Fatal> {
        let Some(found) = value.get(key) else { return Ok(None) };
        match fetch_time(found) {
            Ok(Some(t)) if t > now + MAX_FUTURE => Err(Fatal::new(
                DATAERR,
                format!("import: {shown}: {key} {t} is in the future; fix the clock or the field"),
            )),
            Ok(t) => Ok(t),
            Err(problem) => Err(Fatal::new(DATAERR, format!("import: {shown}: {key}: {problem}"))),
        }
    };
    let last_fetch = match time("last_fetch")? {
        Some(t) => Some(t),
        None => time("timestamp")?,
    };
    let doc = doc.with_fetch_times(last_fetch, time("last_rich_fetch")?);
    let cache_name = cache.name.clone();
    run_offline(settings, |offline| async move {
        let saved = offline
            .saver
            .save(&cache_name, doc, Precondition::None, 0)
            .await
            .map_err(|e| Fatal::new(CANTCREAT, format!("import: {cache_name}: {e}")))?;
        println!("imported {cache_name} version {}", saved.version);
        Ok(())
    })
}

/// The cache's rules refused the document (exit 65, one line): a document the daemon
/// would refuse to serve would only lose the cache.
fn refused(shown: &str, name: &str, refusal: Refusal) -> Fatal {
    Fatal::new(DATAERR, format!("import: {}", refusal.worded(Refused::File { shown, cache: name })))
}

/// A fetch time as the old app and other tools write it: RFC 3339, an ISO 8601
/// date-time without an offset (taken as UTC), or unix seconds. `null` is no time.
fn fetch_time(value: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| format!("{n} is not a number of seconds"))?;
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9).round() as u32;
            if !(0.0..=253_402_300_799.0).contains(&whole) {
                return Err(format!("{n} is not a plausible number of unix seconds"));
            }
            DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
                .map(Some)
                .ok_or_else(|| format!("{n} is not a plausible number of unix seconds"))
        }
        Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(Some(t.with_timezone(&Utc)));
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                    return Ok(Some(t.and_utc()));
                }
            }
            if let Ok(secs) = s.parse::<i64>() {
                return fetch_time(&Value::from(secs));
            }
            Err(format!("{s:?} is neither RFC 3339 nor unix seconds"))
        }
        other => Err(format!("{other} is neither RFC 3339 nor unix seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_the_usual_spellings() {
        assert_eq!(fetch_time(&json!("2026-11-20T10:00:00Z")).unwrap(), Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(fetch_time(&json!("2026-11-20T11:00:00+01:00")).unwrap(), Some(t("2026-11-20T10:00:00Z")));
        // Python's datetime.now().isoformat(): no offset, taken as UTC.
        assert_eq!(fetch_time(&json!("2026-11-20T10:00:00.123456")).unwrap(), Some(t("2026-11-20T10:00:00.123456Z")));
        assert_eq!(fetch_time(&json!("2026-11-20 10:00:00")).unwrap(), Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(fetch_time(&json!(1_795_168_800)).unwrap(), Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(fetch_time(&json!(1_795_168_800.5)).unwrap(), Some(t("2026-11-20T10:00:00.5Z")));
        assert_eq!(fetch_time(&json!("1795168800")).unwrap(), Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(fetch_time(&json!(null)).unwrap(), None);
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [json!("yesterday"), json!(true), json!([1]), json!(-5), json!(1e300)] {
            assert!(fetch_time(&bad).is_err(), "{bad}");
        }
    }
}
