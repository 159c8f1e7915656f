//! Lifecycle of the memory-tier actor.

use super::{MemoryTier, ACTOR};
use actix::{Actor, Context, Supervised};

impl Actor for MemoryTier {
    type Context = Context<Self>;
}

impl Supervised for MemoryTier {
    /// actix reuses the struct: drop every entry and pending load so the restarted
    /// actor holds nothing the failed one may have left half-done. Waiting readers see
    /// their load fail and retry; memory refills from the file tier.
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = ACTOR, "restarting memory tier");
        self.reset();
    }
}
