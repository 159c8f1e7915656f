//! A reload reaching the actors: each takes from the new configuration what it can
//! apply live (what needs a restart is the caller's to report).

use super::boot::Actors;
use crate::retention::RetentionHandle;
use crate::retry_queue::Retune;
use crate::supervisor::{spawn_guarded, ActorId, FailureReporter};
use crate::system::{refresh_caches, SystemConfig};

/// Applies `config` to the running actors: the caches' rules, the refresher's caches
/// and policy, the retention purge, and with Postgres the retry
/// queue's policy and the pool's connection settings (credentials read afresh reach
/// new connections without a restart).
pub(super) fn apply(
    actors: &Actors,
    retention: Option<&RetentionHandle>,
    config: &SystemConfig,
    reporter: &FailureReporter,
) {
    // Every admission (PUT, refresh) and every load from now on.
    actors.rules.replace(config.rules.clone());
    let caches = refresh_caches(&config.data_dir, &config.refresh.caches, actors.store.clone());
    actors.refresher.reconfigure(caches, config.refresh.policy.clone());
    if let Some(retention) = retention {
        retention.reconfigure(config.retention_days.clone());
    }
    let Some(pg) = &config.postgres else { return };
    if let Some(if_match) = &actors.if_match {
        if_match.retune(config.retention_days.clone());
    }
    if let Some(queue) = &actors.queue {
        queue.retune(Retune { policy: pg.retry, retention_days: config.retention_days.clone() });
    }
    if let Some(store) = &actors.store {
        let (store, connect) = (store.clone(), pg.connect.clone());
        // The store's work, outside its mailbox: a panic counts as the store's.
        spawn_guarded(ActorId::Store, reporter.clone(), async move {
            match store.reconnect(connect).await {
                Ok(true) => tracing::info!("Postgres connection settings reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, alert = true, "new Postgres settings refused; keeping the running pool")
                }
            }
        });
    }
}
