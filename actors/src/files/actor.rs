//! Lifecycle of the file-tier actor.

use super::{FileTier, ACTOR};
use actix::{Actor, Context, Supervised};

impl Actor for FileTier {
    type Context = Context<Self>;

    /// Runs at the first start and again after every restart: the index is rebuilt from
    /// disk, so a restarted actor holds nothing the failed one had in memory.
    fn started(&mut self, _ctx: &mut Self::Context) {
        match self.rebuild_index() {
            Ok(()) => tracing::debug!(actor = ACTOR, caches = self.index().len(), "file tier index built"),
            Err(e) => tracing::error!(actor = ACTOR, alert = true, error = %e, "cannot read the data directory"),
        }
    }
}

impl Supervised for FileTier {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = ACTOR, "restarting file tier");
    }
}
