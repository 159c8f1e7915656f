//! Lifecycle of the refresher.

use super::{Refresher, ACTOR};
use actix::{Actor, AsyncContext, Context, Supervised};
use std::time::Duration;

/// How often due caches are looked for: well within the one-second promise.
const TICK: Duration = Duration::from_millis(200);

impl Actor for Refresher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !crate::supervisor::runtime_alive() {
            return;
        }
        if self.begun {
            // A restart: fetch times come from disk again.
            self.load_times(ctx);
        }
        ctx.run_interval(TICK, |refresher, ctx| refresher.tick(ctx));
    }
}

impl Supervised for Refresher {
    /// Fetches in flight died with the failed actor; their waiters get an error and
    /// the schedule picks the caches up again.
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = ACTOR, "restarting refresher");
        for state in self.caches.values_mut() {
            state.in_flight = false;
            state.waiters.clear();
        }
        self.push.restarted();
    }
}
