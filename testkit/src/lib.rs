//! Test harness for tiercache.
//!
//! [`pg`] starts throwaway PostgreSQL clusters (and a PgBouncer in front of one) from
//! the machine's own binaries, so that tests never touch a shared server. See
//! `docs/database.md` for how the tests use it.

pub mod pg;

pub use pg::{external_url, Error, PgBouncer, PgCluster, PgOptions, Result, EXTERNAL_URL_VAR};
