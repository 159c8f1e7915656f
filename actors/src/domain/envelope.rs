//! The on-disk envelope (docs/envelope.md): a document plus its metadata in one JSON object.

use super::{CacheName, Checksum, Document};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Why an envelope was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or fields missing or mistyped.
    #[error("not a valid envelope: {0}")]
    Parse(#[from] serde_json::Error),
    /// A `format` this build does not know.
    #[error("unknown envelope format {0}")]
    Format(u32),
    /// The envelope belongs to another cache or project.
    #[error("envelope is for {project}/{name}, expected {expected}")]
    WrongOwner {
        /// Project named in the file.
        project: String,
        /// Cache named in the file.
        name: String,
        /// What the reader expected.
        expected: String,
    },
    /// The data does not hash to the recorded checksum.
    #[error("checksum mismatch: recorded {recorded}, computed {computed}")]
    Checksum {
        /// From the file.
        recorded: Checksum,
        /// Over the data found.
        computed: Checksum,
    },
    /// Version 0 is never written.
    #[error("version must be positive")]
    Version,
}

/// An envelope as parsed: the whole file on the slow path; on the fast path the header
/// alone, with a placeholder for the data (see [`split`]).
#[derive(Deserialize)]
struct Raw<'a> {
    format: u32,
    project: String,
    name: String,
    version: u64,
    checksum: Checksum,
    last_fetch: Option<DateTime<Utc>>,
    last_rich_fetch: Option<DateTime<Utc>>,
    saved_at: DateTime<Utc>,
    #[serde(borrow)]
    data: &'a RawValue,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map_or_else(|| "null".to_owned(), |t| format!("\"{}\"", rfc3339(t)))
}

/// Serialises `doc` as an envelope of `project`, embedding the canonical body verbatim.
pub fn encode(project: &str, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.body.len() + 400);
    let project_json = serde_json::to_string(project).expect("string");
    let head = format!(
        "{{\"format\":{FORMAT},\"project\":{project_json},\"name\":\"{}\",\"version\":{},\"checksum\":\"{}\",\"last_fetch\":{},\"last_rich_fetch\":{},\"saved_at\":\"{}\",\"data\":",
        doc.name,
        doc.version,
        doc.checksum,
        opt_time(&doc.last_fetch),
        opt_time(&doc.last_rich_fetch),
        rfc3339(&doc.saved_at),
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&doc.body);
    out.extend_from_slice(b"}\n");
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits an envelope as [`encode`] writes it into its header (as a small JSON object
/// whose `data` is a placeholder `0`, so that it parses as a [`Raw`]) and the data's
/// byte range, without scanning the data. Inside a JSON string a quote is always
/// escaped, so the first `"saved_at":"` is the header's own.
fn split(bytes: &[u8]) -> Option<(Vec<u8>, std::ops::Range<usize>)> {
    const SAVED_AT: &[u8] = b"\"saved_at\":\"";
    const DATA: &[u8] = b"\",\"data\":";
    let head = find(bytes.get(..4096.min(bytes.len()))?, SAVED_AT)? + SAVED_AT.len();
    let close = head + find(bytes.get(head..head + 64.min(bytes.len() - head))?, DATA)?;
    let end = bytes.len()
        - if bytes.ends_with(b"}\n") {
            2
        } else if bytes.ends_with(b"}") {
            1
        } else {
            return None;
        };
    let start = close + DATA.len();
    if start >= end {
        return None;
    }
    let mut header = bytes[..start].to_vec();
    header.extend_from_slice(b"0}");
    Some((header, start..end))
}

/// Parses and verifies an envelope for cache `name` of `project`.
///
/// The data is hashed as found; if that misses (the file was reformatted by hand), it
/// is canonicalised and hashed again, so only a real change of content is corruption.
///
/// # Errors
/// [`EnvelopeError`] for anything that must not be served.
pub fn decode(project: &str, name: &CacheName, bytes: &[u8]) -> Result<Document, EnvelopeError> {
    decode_bytes(project, name, bytes::Bytes::copy_from_slice(bytes))
}

/// [`decode`] over an owned buffer: the document's body is a slice of it (no copy), and
/// an envelope as tiercache writes it is verified by its checksum without parsing the
/// data (a 1 MB cache loads in the time of one SHA-256).
///
/// # Errors
/// [`EnvelopeError`] for anything that must not be served.
pub fn decode_bytes(project: &str, name: &CacheName, bytes: bytes::Bytes) -> Result<Document, EnvelopeError> {
    if let Some((header, range)) = split(&bytes) {
        if let Ok(h) = serde_json::from_slice::<Raw<'_>>(&header) {
            let body = bytes.slice(range);
            if Checksum::of(&body) == h.checksum {
                check_owner(project, name, h.format, &h.project, &h.name, h.version)?;
                return Ok(Document::new(
                    name.clone(),
                    h.version,
                    h.checksum,
                    h.last_fetch,
                    h.last_rich_fetch,
                    h.saved_at,
                    body,
                ));
            }
        }
    }
    decode_slow(project, name, &bytes)
}

fn check_owner(
    project: &str,
    name: &CacheName,
    format: u32,
    found_project: &str,
    found_name: &str,
    version: u64,
) -> Result<(), EnvelopeError> {
    if format != FORMAT {
        return Err(EnvelopeError::Format(format));
    }
    if found_project != project || found_name != name.as_str() {
        return Err(EnvelopeError::WrongOwner {
            project: found_project.to_owned(),
            name: found_name.to_owned(),
            expected: format!("{project}/{name}"),
        });
    }
    if version == 0 {
        return Err(EnvelopeError::Version);
    }
    Ok(())
}

/// The full parse: for envelopes reformatted or edited by hand.
fn decode_slow(project: &str, name: &CacheName, bytes: &[u8]) -> Result<Document, EnvelopeError> {
    let raw: Raw<'_> = serde_json::from_slice(bytes)?;
    check_owner(project, name, raw.format, &raw.project, &raw.name, raw.version)?;
    let found = raw.data.get().as_bytes();
    let mut body = bytes::Bytes::copy_from_slice(found);
    let mut computed = Checksum::of(&body);
    if computed != raw.checksum {
        let canonical = super::canonical::canonicalize_slice(found)?;
        computed = Checksum::of(&canonical);
        body = canonical.into();
    }
    if computed != raw.checksum {
        return Err(EnvelopeError::Checksum { recorded: raw.checksum, computed });
    }
    Ok(Document::new(name.clone(), raw.version, raw.checksum, raw.last_fetch, raw.last_rich_fetch, raw.saved_at, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewDocument;

    fn doc() -> Document {
        let new = NewDocument::from_json(br#"{"b":[1,2],"a":"x"}"#).unwrap();
        let name = CacheName::parse("strava").unwrap();
        Document::new(name, 3, new.checksum, Some(Utc::now()), None, Utc::now(), new.body)
    }

    #[test]
    fn round_trips() {
        let d = doc();
        let bytes = encode("p", &d);
        let back = decode("p", &d.name, &bytes).unwrap();
        assert_eq!(back.body, d.body);
        assert_eq!(back.version, 3);
        assert_eq!(back.etag, d.etag);
    }

    #[test]
    fn accepts_reformatted_data_but_not_changed_data() {
        let d = doc();
        let text = String::from_utf8(encode("p", &d)).unwrap();
        let pretty = text.replace(r#"{"a":"x","b":[1,2]}"#, "{ \"b\": [1, 2],\n \"a\": \"x\" }");
        assert!(decode("p", &d.name, pretty.as_bytes()).is_ok());
        let changed = text.replace("[1,2]", "[1,3]");
        assert!(matches!(decode("p", &d.name, changed.as_bytes()), Err(EnvelopeError::Checksum { .. })));
        assert!(decode("q", &d.name, text.as_bytes()).is_err());
        assert!(decode("p", &d.name, &text.as_bytes()[..text.len() / 2]).is_err());
    }

    #[test]
    fn the_fast_path_reads_what_encode_writes_and_nothing_else() {
        let d = doc();
        let bytes = encode("p", &d);
        let (header, range) = split(&bytes).expect("our own layout");
        assert_eq!(&bytes[range], &d.body[..]);
        assert!(serde_json::from_slice::<Raw<'_>>(&header).is_ok());
        // A data change is caught by the checksum, then the slow path reports it.
        let text = String::from_utf8(bytes).unwrap().replace("[1,2]", "[1,3]");
        assert!(matches!(decode("p", &d.name, text.as_bytes()), Err(EnvelopeError::Checksum { .. })));
        // Keys in another order: the slow path still verifies it.
        let reordered = format!(
            "{{\"data\":{},\"format\":1,\"project\":\"p\",\"name\":\"strava\",\"version\":3,\"checksum\":\"{}\",\"last_fetch\":null,\"last_rich_fetch\":null,\"saved_at\":\"2026-01-01T00:00:00Z\"}}",
            String::from_utf8(d.body.to_vec()).unwrap(),
            d.checksum
        );
        assert_eq!(decode("p", &d.name, reordered.as_bytes()).unwrap().body, d.body);
        // A project whose name holds the marker cannot fool the split.
        let tricky = encode("a\"saved_at\":\"x", &d);
        assert_eq!(decode("a\"saved_at\":\"x", &d.name, &tricky).unwrap().body, d.body);
    }
}
