//! Black-box tests of the tiercache binary against real PostgreSQL: the Postgres tier
//! (round trip, recovery from Postgres, corrupt files, the version guard, deletes,
//! outages, row-level security, TLS, a transaction pooler) and the retry queue
//! (outages, stalls and SIGTERM, `kill -9`, the dead letter, a failpoint,
//! `BACKGROUND_RETRY=false`).
//!
//! Each test starts its own throwaway cluster (`tiercache_testkit::pg`, run as the
//! `postgres` user on a Unix socket, with `schema.sql` applied by psql) and its own
//! daemons (`tiercache_testkit::daemon`), so tests run in parallel and share nothing.
//! A failing test prints the last lines of each of its daemons' runs and keeps their
//! directories (the paths are printed); `TEST_LOG=1 cargo test --all-features --test
//! postgres -- --nocapture` prints every daemon's whole log.

mod helpers;

// The Postgres tier.
mod corrupt_file;
mod delete;
mod migrate;
mod operator_logs;
mod outage_at_startup;
mod pooler;
mod retention;
mod rls;
mod round_trip;
mod tls;
mod version_guard;

// The retry queue.
mod background_retry_off;
mod dead_letter;
#[cfg(feature = "failpoints")]
mod failpoint;
mod kill9_storm;

// Chaos.
mod chaos;
mod password_rotation;

// Several instances.
#[cfg(feature = "failpoints")]
mod delete_race;
mod if_match;
#[cfg(feature = "failpoints")]
mod if_match_disk;
#[cfg(feature = "failpoints")]
mod last_save_wins;
#[cfg(feature = "failpoints")]
mod listener_race;
mod multi_instance;
mod projects_isolation;
mod queue_outage;
mod shutdown_stall;

// The command-line clients with Postgres.
mod status_causes;
mod status_cli;

// Operations.
mod ops_notify;
mod ops_restore;

// Push freshness.
mod deauth;

// A shared Postgres as a hostile neighbour: locks, resource errors, lost notifications,
// leadership on 304, a password changed under the daemon.
mod hostile_neighbour;
mod synced;

// Every acknowledged write kept, checked on a recorded concurrent history.
mod history;
