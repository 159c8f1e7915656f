//! Black-box tests of the tiercache binary through HTTP, signals and files.
//!
//! Each test starts the real binary on its own temp dir and port (testkit's `Daemon`,
//! configured through `helpers::Options`), so they run in parallel.
//! `TEST_LOG=1 cargo test --all-features --test api -- --nocapture` shows the daemons'
//! logs.

mod helpers;
mod util;

mod answer_newlines;
mod bad_input;
mod broken_cache;
mod check_config_files;
mod check_config_promises;
mod cli_address;
mod cli_get_status;
mod conditional;
mod config_errors;
mod corrupt_file;
mod data_dir_project;
mod delete;
mod disk_full;
mod head_requests;
mod kill9_storm;
mod lock;
mod logs;
mod malformed_requests;
mod openapi;
mod operator_logs;
mod ops_commands;
mod ops_notify;
mod port_in_use;
mod relative_paths;
mod reload_keys;
mod retention;
mod round_trip;
mod schema_loads;
mod security_auth;
mod security_fuzz;
mod security_input;
mod security_network;
mod security_protected;
mod security_refusals;
mod security_secrets;
mod security_support;
mod signals;
mod status_causes;
#[cfg(feature = "failpoints")]
mod supervision;
mod terminal;
mod unknown;

// The refresher and its sources against a fake upstream.
mod fake_upstream;
mod refresh_conditional;
mod refresh_failures;
mod refresh_on_demand;
mod refresh_races;
mod refresh_schedule;
mod refresh_sources;
mod refresh_strava;
mod refresh_strava_incremental;
mod refresh_support;
mod strava_cli;
mod webhook_support;
mod webhooks_abuse;
mod webhooks_deauth;
mod webhooks_strava;
