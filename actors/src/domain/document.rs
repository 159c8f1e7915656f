//! A cache document as every tier holds it: canonical bytes plus the facts about them.

use super::{CacheName, Checksum};
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// One version of one cache, ready to send.
///
/// The body is the canonical JSON and the ETag is precomputed, so serving a read costs
/// no serialisation: tiers share the same `Arc<Document>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Which cache this is.
    pub name: CacheName,
    /// Strictly increasing per cache.
    pub version: u64,
    /// SHA-256 of `body`.
    pub checksum: Checksum,
    /// When the data was last fetched (a PUT's save time for PUTs).
    pub last_fetch: Option<DateTime<Utc>>,
    /// When the last rich (fuller, expensive) fetch happened.
    pub last_rich_fetch: Option<DateTime<Utc>>,
    /// When this version was made durable.
    pub saved_at: DateTime<Utc>,
    /// The canonical JSON.
    pub body: Bytes,
    /// `"VERSION-C"` (docs/openapi.yaml).
    pub etag: String,
    /// `Last-Modified` (the last fetch, else the save time) in HTTP date format:
    /// made once here, so serving a read formats no date.
    pub last_modified: String,
}

impl Document {
    /// Builds a document, computing its ETag.
    pub fn new(
        name: CacheName,
        version: u64,
        checksum: Checksum,
        last_fetch: Option<DateTime<Utc>>,
        last_rich_fetch: Option<DateTime<Utc>>,
        saved_at: DateTime<Utc>,
        body: Bytes,
    ) -> Self {
        let etag = checksum.etag(version);
        let last_modified = last_fetch.unwrap_or(saved_at).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        Self { name, version, checksum, last_fetch, last_rich_fetch, saved_at, body, etag, last_modified }
    }

    /// When the content was current: a PUT's save time, a refresh's start (at the
    /// latest the document it merged into). Two instances' saves that meet in Postgres
    /// are ordered by it: the later content wins, whichever reached Postgres first.
    pub fn content_time(&self) -> DateTime<Utc> {
        self.last_fetch.unwrap_or(self.saved_at)
    }

    /// The same content at another version (a rebase).
    #[must_use]
    pub fn at_version(&self, version: u64) -> Self {
        Self::new(
            self.name.clone(),
            version,
            self.checksum,
            self.last_fetch,
            self.last_rich_fetch,
            self.saved_at,
            self.body.clone(),
        )
    }
}

/// A validated, canonicalised document that has not been given a version yet.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Canonical JSON bytes.
    pub body: Bytes,
    /// SHA-256 of `body`.
    pub checksum: Checksum,
    /// Fetch time to record.
    pub last_fetch: Option<DateTime<Utc>>,
    /// Rich fetch time to record.
    pub last_rich_fetch: Option<DateTime<Utc>>,
}

impl NewDocument {
    /// Canonicalises raw JSON.
    ///
    /// # Errors
    /// The parse error for input that is not JSON.
    pub fn from_json(raw: &[u8]) -> Result<Self, serde_json::Error> {
        let body = super::canonical::canonicalize_slice(raw)?;
        let checksum = Checksum::of(&body);
        Ok(Self { body: body.into(), checksum, last_fetch: None, last_rich_fetch: None })
    }
}

/// What a writer expects the current version to be (`If-Match`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Precondition {
    /// No expectation.
    #[default]
    None,
    /// `If-Match: *`: some version must exist.
    Exists,
    /// One of these ETags must be current.
    OneOf(Vec<String>),
    /// No version may be current (the writer built on nothing: a refresh of a cache
    /// that held no document when its fetch started).
    Absent,
}

impl Precondition {
    /// Whether the current ETag (if any) satisfies this precondition.
    pub fn holds(&self, current: Option<&str>) -> bool {
        match self {
            Self::None => true,
            Self::Exists => current.is_some(),
            Self::OneOf(tags) => current.is_some_and(|c| tags.iter().any(|t| t.trim_start_matches("W/") == c)),
            Self::Absent => current.is_none(),
        }
    }

    /// The base of a save built from `held` (what a writer read before building its
    /// document): that exact version must still be current, or none if none was held.
    pub fn based_on(held: Option<&Document>) -> Self {
        match held {
            Some(doc) => Self::OneOf(vec![doc.etag.clone()]),
            None => Self::Absent,
        }
    }

    /// The version a write under this precondition was built from, when it names one
    /// (`Some(0)`: built from nothing).
    pub fn base_version(&self) -> Option<u64> {
        match self {
            Self::OneOf(tags) if tags.len() == 1 => {
                tags[0].trim_start_matches("W/").trim_matches('"').split('-').next()?.parse().ok()
            }
            Self::Absent => Some(0),
            _ => None,
        }
    }
}
