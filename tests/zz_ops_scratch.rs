//! Temporary: runs the ops tests alone while tests/api does not compile (removed before commit).
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/ops_commands.rs"]
mod ops_commands;
#[path = "api/ops_notify.rs"]
mod ops_notify;
