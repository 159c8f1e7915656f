//! Why the runtime could not start: one variant per cause, so that the daemon maps each
//! to its own exit code and message.

use crate::store::PoolError;

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

impl From<PoolError> for BootError {
    /// The pool could not be made: the key the error names (`postgres.ssl_root_cert`
    /// when the configured root certificate file failed, `postgres.url` otherwise) and
    /// its message, word for word.
    fn from(error: PoolError) -> Self {
        Self::Postgres { key: error.key(), reason: error.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tls::TlsMode;
    use crate::store::ConnectConfig;

    fn connect(url: &str, root: Option<&str>) -> ConnectConfig {
        let mut cfg = ConnectConfig::new(url);
        cfg.options.sslmode = Some(TlsMode::VerifyFull);
        cfg.options.ssl_root_cert = root.map(Into::into);
        cfg
    }

    #[test]
    fn a_missing_root_certificate_file_names_its_own_key() {
        let cfg = connect("postgres://u@db.example.com/x", Some("/nonexistent/ca.pem"));
        let e = BootError::from(crate::store::connect_pool(&cfg).err().expect("no pool without the root certificate"));
        assert!(e.to_string().starts_with("config error: postgres.ssl_root_cert: cannot read ssl_root_cert"), "{e}");
    }

    #[test]
    fn a_bad_url_names_postgres_url_even_with_a_bad_root_certificate() {
        let cfg = connect("postgres://u@db.example.com:notaport/x", Some("/nonexistent/ca.pem"));
        let e = BootError::from(crate::store::connect_pool(&cfg).err().expect("no pool from a bad URL"));
        assert!(e.to_string().starts_with("config error: postgres.url: invalid postgres url"), "{e}");
    }

    #[test]
    fn a_root_certificate_the_url_names_is_the_urls_to_fix() {
        let cfg = connect("postgres://u@db.example.com/x?sslrootcert=/nonexistent/ca.pem", None);
        let e = BootError::from(crate::store::connect_pool(&cfg).err().expect("no pool without the root certificate"));
        assert!(e.to_string().starts_with("config error: postgres.url: cannot read ssl_root_cert"), "{e}");
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
