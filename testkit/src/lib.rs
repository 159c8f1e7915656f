//! Test harness for tiercache.
//!
//! [`pg`] starts throwaway PostgreSQL clusters (and a PgBouncer in front of one) from
//! the machine's own binaries, so that tests never touch a shared server. See
//! `docs/database.md` for how the tests use it. [`daemon`] runs the real `tiercache`
//! binary on a temporary directory (the one harness of `tests/api` and
//! `tests/postgres`), [`http`] talks to it, [`cli`] runs its commands to completion.
//! [`fake_http`] stands in for the upstream APIs. [`envelope`] back-dates cache files
//! for retention tests. [`every_key`] is the reload tests' configuration that sets every
//! key.

pub mod cli;
mod config_file;
pub mod daemon;
pub mod envelope;
pub mod every_key;
pub mod fake_http;
pub mod http;
pub mod pg;
pub mod port;
pub mod rng;
mod spawn;
pub mod wait;

pub use daemon::{Daemon, DaemonOptions, Response};
pub use pg::{external_url, Error, PgBouncer, PgCluster, PgOptions, Result, EXTERNAL_URL_VAR};
pub use wait::wait_for;
