//! Domain types shared by every actor: names, documents, envelopes, checksums.

pub mod canonical;
mod checksum;
mod document;
pub mod envelope;
pub mod limits;
mod name;
pub mod schema;

pub use checksum::{sha256, Checksum};
pub use document::{Document, NewDocument, Precondition};
pub use name::{CacheName, InvalidName, MAX_NAME_LEN};
pub use schema::{DocumentSchema, SchemaError};
