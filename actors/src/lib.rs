//! tiercache's actors: the caches' state, and everything the daemon keeps on disk or in
//! Postgres while it runs. (The binary keeps only its edges' own state: the API's
//! policy and readiness, the health verdict, the `data_dir` lock; docs/architecture.md.)
//!
//! # Layout
//! - [`domain`]: names, canonical JSON, checksums, documents, envelopes, schemas.
//! - [`supervisor`]: the panic guards (handlers and the asynchronous work they start),
//!   restart counting and the give-up rule, the one list of actors and their health.
//! - [`memory`]: the memory tier actor and its published snapshot.
//! - [`files`]: the file tier actor (durable envelopes, verification, tombstones).
//! - [`store`]: the Postgres actor (version-guarded writes, RLS-bound reads, leadership
//!   locks, source state) and the transaction-pooler check.
//! - [`retry_queue`]: write-behind to Postgres, coalesced, with backoff and a dead letter.
//! - [`refresher`]: schedules, on-demand and emergency refreshes, and the sources.
//! - [`listener`]: cross-instance invalidation (LISTEN; rows read back, never trusted).
//! - [`cache_rules`]: each cache's `max_size` and schema, and the one admission.
//! - [`if_match`]: `If-Match` across instances, a compare-and-set on the Postgres row.
//! - [`save_flow`]: admission, file, memory, then the retry queue: the one path of a
//!   save; and the one adoption of a version from Postgres.
//! - [`tiers`]: the read flow across the actors, and the save flow, as the API uses them.
//! - [`startup`]: the startup plan (file vs row vs pending save) and the sync that
//!   carries it out between the files and Postgres.
//! - [`retention`]: purging caches no longer configured, tier by tier.
//! - [`strava_subscription`]: the Strava push subscription this daemon holds (its
//!   record, shared with the other instances through Postgres).
//! - [`metrics`]: the Prometheus registry.
//! - [`system`]: what the actors need from the configuration.
//! - [`runtime`]: the lifecycle in one place: boot the actors under supervision, the
//!   startup step, go live (with the retention purge), reconfigure on reload, quiesce,
//!   drain, and the supervisor's verdict.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache_rules;
pub mod domain;
pub mod files;
pub mod if_match;
pub mod listener;
pub mod memory;
pub mod metrics;
mod pause_point;
pub mod refresher;
pub mod retention;
pub mod retry_queue;
pub mod runtime;
pub mod save_flow;
pub mod startup;
pub mod store;
pub mod strava_subscription;
pub mod supervisor;
pub mod system;
pub mod tiers;
