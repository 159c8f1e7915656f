//! Why the runtime could not start: one variant per cause, so that the daemon maps each
//! to its own exit code and message.

use crate::store::tls::{client_config, TlsMode};
use crate::store::ConnectConfig;

/// A failure while booting the actors or during the startup step before readiness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    /// The Postgres settings cannot make a connection pool; `key` is the setting at
    /// fault (`postgres.url`, or `postgres.ssl_root_cert` when that file is unusable).
    #[error("config error: {key}: {reason}")]
    Postgres {
        /// The configuration key to fix.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The file tier did not answer with its index of the data directory.
    #[error("the file tier did not start: {0}")]
    FileTier(String),
    /// `postgres.statement_cache = true` in front of a transaction pooler: one
    /// connection's transactions ran on the backends with these pids.
    #[error(
        "config error: postgres.statement_cache: postgres.url leads to a transaction pooler (one \
         connection's transactions ran on backends {first} and {second}); set \
         postgres.statement_cache = false, or connect to the database directly or through a \
         session pooler (Supabase: port 5432)"
    )]
    TransactionPooler {
        /// The first backend's pid.
        first: i32,
        /// The second backend's pid.
        second: i32,
    },
}

impl BootError {
    /// The pool could not be made from `connect`: names `postgres.ssl_root_cert` when the
    /// configured root certificate file is what failed (its own error, word for word),
    /// and `postgres.url` otherwise (the URL, its `sslmode` or its `sslrootcert`).
    pub(crate) fn postgres(connect: &ConnectConfig, reason: String) -> Self {
        let root_cert_failed = connect
            .options
            .ssl_root_cert
            .as_deref()
            .and_then(|path| client_config(TlsMode::VerifyCa, Some(path)).err())
            .is_some_and(|cert_error| cert_error == reason);
        let key = if root_cert_failed { "postgres.ssl_root_cert" } else { "postgres.url" };
        Self::Postgres { key, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(url: &str, root: Option<&str>) -> ConnectConfig {
        let mut cfg = ConnectConfig::new(url);
        cfg.options.sslmode = Some(TlsMode::VerifyFull);
        cfg.options.ssl_root_cert = root.map(Into::into);
        cfg
    }

    #[test]
    fn a_missing_root_certificate_file_names_its_own_key() {
        let cfg = connect("postgres://u@db.example.com/x", Some("/nonexistent/ca.pem"));
        let reason = crate::store::connect_pool(&cfg).err().expect("no pool without the root certificate");
        let e = BootError::postgres(&cfg, reason);
        assert!(e.to_string().starts_with("config error: postgres.ssl_root_cert: cannot read ssl_root_cert"), "{e}");
    }

    #[test]
    fn a_bad_url_names_postgres_url_even_with_a_bad_root_certificate() {
        let cfg = connect("postgres://u@db.example.com:notaport/x", Some("/nonexistent/ca.pem"));
        let reason = crate::store::connect_pool(&cfg).err().expect("no pool from a bad URL");
        let e = BootError::postgres(&cfg, reason);
        assert!(e.to_string().starts_with("config error: postgres.url: invalid postgres url"), "{e}");
    }

    #[test]
    fn the_pooler_and_file_tier_messages_are_unchanged() {
        let e = BootError::TransactionPooler { first: 7, second: 9 };
        assert!(e.to_string().starts_with("config error: postgres.statement_cache: postgres.url leads to"));
        assert!(e.to_string().contains("backends 7 and 9); set postgres.statement_cache = false"));
        let e = BootError::FileTier("mailbox closed".into());
        assert_eq!(e.to_string(), "the file tier did not start: mailbox closed");
    }
}
