//! The one list of the daemon's supervised actors and their names in logs and metrics.

/// Every supervised actor (the listener and the retention purge are tasks, but
/// supervised the same way).
///
/// Adding an actor here gives it a restart series at 0 from the start and makes the
/// health probe decide how it is judged (its `match` is exhaustive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorId {
    /// The memory tier (`memory/`).
    Memory,
    /// The file tier (`files/`).
    File,
    /// The Postgres store (`store/`).
    Store,
    /// The retry queue (`retry_queue/`).
    Retry,
    /// The refresher (`refresher/`).
    Refresher,
    /// The LISTEN task (`listener/`).
    Listener,
    /// The retention purge's task (`retention/`).
    Retention,
    /// The daemon's own tasks: the HTTP server and the systemd health loop.
    Api,
}

impl ActorId {
    /// Every actor, in the order their restart series are registered.
    pub const ALL: [ActorId; 8] = [
        ActorId::Memory,
        ActorId::File,
        ActorId::Store,
        ActorId::Retry,
        ActorId::Refresher,
        ActorId::Listener,
        ActorId::Retention,
        ActorId::Api,
    ];

    /// The name in logs and in `tiercache_actor_restarts_total{actor=...}`.
    pub const fn label(self) -> &'static str {
        match self {
            ActorId::Memory => "memory",
            ActorId::File => "file",
            ActorId::Store => "store",
            ActorId::Retry => "retry",
            ActorId::Refresher => "refresher",
            ActorId::Listener => "listener",
            ActorId::Retention => "retention",
            ActorId::Api => "api",
        }
    }
}

impl std::fmt::Display for ActorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::ActorId;

    #[test]
    fn labels_are_the_metric_label_values_and_distinct() {
        let labels: Vec<&str> = ActorId::ALL.iter().map(|a| a.label()).collect();
        assert_eq!(labels, ["memory", "file", "store", "retry", "refresher", "listener", "retention", "api"]);
    }
}
