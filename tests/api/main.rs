//! Black-box tests of the tiercache binary through HTTP, signals and files.
//!
//! Each test starts the real binary on its own temp dir and port (see `helpers`), so
//! they run in parallel. `TEST_LOG=1 cargo test --all-features --test api -- --nocapture`
//! shows the daemons' logs.

mod helpers;

mod bad_input;
mod conditional;
mod config_errors;
mod corrupt_file;
mod delete;
mod kill9_storm;
mod lock;
mod logs;
mod round_trip;
mod signals;
#[cfg(feature = "failpoints")]
mod supervision;
mod unknown;
