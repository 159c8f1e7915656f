//! tiercache's actors: every piece of runtime state lives here.
//!
//! # Layout
//! - [`domain`]: names, canonical JSON, checksums, documents, envelopes.
//! - [`supervisor`]: the panic guard, restart counting and the give-up rule.
//! - [`memory`]: the memory tier actor and its published snapshot.
//! - [`files`]: the file tier actor (durable envelopes, verification, tombstones).
//! - [`tiers`]: the read and save flows across the actors, as the API uses them.
//! - [`retention`]: purging caches no longer configured, tier by tier.
//! - [`metrics`]: the Prometheus registry.
//! - [`system`]: starts the actors under supervision, in dependency order.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod domain;
pub mod files;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod refresher;
pub mod retention;
pub mod retry_queue;
pub mod save_flow;
pub mod startup;
pub mod store;
pub mod supervisor;
pub mod system;
pub mod tiers;
