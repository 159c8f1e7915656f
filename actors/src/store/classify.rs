//! What a Postgres error means for the caller, by what an operator can fix without
//! touching the data.
//!
//! - Connecting or authenticating, a missing database or schema, a server that is
//!   starting, stopping, read-only or out of a resource (SQLSTATE classes 08, 28, 3D,
//!   3F, 53, 54, 57, 58, XX, `25006`, an undefined function or table): an outage. The
//!   save is fine; it waits on disk, is retried for ever and never dead-lettered, and
//!   `tiercache_postgres_up` is 0. Each carries the fix an operator should make.
//! - Serialization failures, deadlocks, a lock not available: transient, retried.
//! - Anything else (a constraint, a check, a type, a permission): Postgres refuses this
//!   statement for good; a save counts toward the dead letter.

use super::StoreError;
use tokio_postgres::error::SqlState;

/// The fix for Postgres that cannot be reached at all.
pub const FIX_UNREACHABLE: &str =
    "check that Postgres runs and that the host and port (or socket) of postgres.url reach it";

/// The fix for a statement that got no answer in time.
pub const FIX_NO_ANSWER: &str = "the server is stalled or overloaded, or a session holds a lock the statement needs: \
     look at pg_stat_activity (wait_event, state, xact_start)";

/// The fix for a project that is not registered.
pub const FIX_NO_PROJECT: &str = "register the project as the schema's owner: INSERT INTO projects (project_name, \
     db_role) VALUES ('PROJECT', 'ROLE') (docs/database.md)";

/// An error with its causes: tokio-postgres says only "error connecting to server" or
/// "error performing TLS handshake" and keeps why (connection refused, an unknown
/// issuer) in its source.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The fix for an outage of SQLSTATE `code`; `None` when `code` is no outage.
pub fn outage_fix(code: &str) -> Option<&'static str> {
    let fix = match code {
        // Connected to a standby (after a failover, or a wrong host).
        "25006" => "Postgres is read-only (a standby?): point postgres.url at the primary",
        // The schema is older than this daemon (or was never applied).
        "42883" | "42P01" | "42703" | "3F000" => {
            "the database's tiercache schema is missing or older than this daemon: run `tiercache migrate`"
        }
        // tiercache_check_caller: the role is not the project's db_role (any more).
        "28T01" => {
            "register the project with this role as its db_role, as the schema's owner: UPDATE projects SET \
             db_role = 'ROLE' WHERE project_name = 'PROJECT' (docs/database.md)"
        }
        "57014" => {
            "a statement was cancelled (statement_timeout): look for a session holding locks or a \
             saturated server"
        }
        "53300" => {
            "no connection slot is free: lower postgres.pool_size, or raise the role's CONNECTION LIMIT or \
             the server's max_connections (docs/database.md)"
        }
        _ => match &code[..2] {
            "28" => {
                "the role or its password was refused: check postgres.url and postgres.password_file (read \
                 again on SIGHUP) against the role in Postgres, and pg_hba.conf"
            }
            "3D" => "the database named in postgres.url does not exist",
            "08" => FIX_UNREACHABLE,
            "53" => "Postgres is out of a resource (disk, memory, connections): see its log",
            "54" => {
                "a Postgres limit was reached (for example the notification queue is full because a session \
                 LISTENs while idle in a transaction): see its log"
            }
            "57" => "Postgres is starting, stopping or in recovery: it should pass; see its log if not",
            "58" | "XX" => "Postgres reports a system error: see its log",
            _ => return None,
        },
    };
    Some(fix)
}

/// Sorts a driver error (see the module's doc).
pub fn classify(e: &tokio_postgres::Error) -> StoreError {
    let text = with_causes(e);
    let detail = e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or(text);
    let Some(code) = e.code() else { return StoreError::Unavailable(detail) };
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
    {
        return StoreError::Transient(detail);
    }
    // A prepared statement that vanished: a transaction pooler with
    // `statement_cache = true`. The configuration is wrong, not the data.
    if *code == SqlState::INVALID_SQL_STATEMENT_NAME {
        return StoreError::Refused {
            cause: detail,
            fix: "behind a transaction pooler set postgres.statement_cache = false",
        };
    }
    match outage_fix(code.code()) {
        Some(fix) => StoreError::Refused { cause: detail, fix },
        None => StoreError::Rejected(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_authentication_and_resource_classes_are_outages() {
        for code in [
            "08006", "08001", "28P01", "28000", "28T01", "3D000", "53000", "53100", "53200", "53300", "54000", "54001",
            "57P01", "57P03", "57014", "58030", "XX000", "25006", "42883", "42P01", "3F000",
        ] {
            assert!(outage_fix(code).is_some(), "{code} is an outage");
        }
    }

    #[test]
    fn the_data_s_own_errors_are_not_outages() {
        for code in ["23505", "23514", "22P02", "22001", "42501", "42601", "P0001"] {
            assert!(outage_fix(code).is_none(), "{code} is the statement's");
        }
    }

    #[test]
    fn each_outage_names_its_fix() {
        assert!(outage_fix("28P01").unwrap().contains("password"));
        assert!(outage_fix("28T01").unwrap().contains("db_role"));
        assert!(outage_fix("3D000").unwrap().contains("database"));
        assert!(outage_fix("42883").unwrap().contains("tiercache migrate"));
        assert!(outage_fix("53300").unwrap().contains("CONNECTION LIMIT"));
        assert!(outage_fix("54000").unwrap().contains("notification queue"));
    }
}
