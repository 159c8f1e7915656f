//! Lifecycle of the retry queue: rebuilt from disk at every start, ticking to send
//! what is due, pinging Postgres while idle.

use super::{RetryQueue, ACTOR};
use actix::{Actor, AsyncContext, Context, Supervised};
use std::time::Duration;

/// How often due caches are looked for.
const TICK: Duration = Duration::from_millis(100);
/// How often an idle queue checks that Postgres answers (`tiercache_postgres_up`).
const PING: Duration = Duration::from_secs(10);

impl Actor for RetryQueue {
    type Context = Context<Self>;

    /// At the first start and after every restart: what is pending is whatever the
    /// files hold that Postgres has not confirmed.
    fn started(&mut self, ctx: &mut Self::Context) {
        if !crate::supervisor::runtime_alive() {
            return;
        }
        self.load_synced();
        self.reconcile(ctx);
        ctx.run_interval(TICK, |queue, ctx| queue.tick(ctx));
        // At once too, so that `tiercache_postgres_up` and an outage are known from the
        // start, not only after the first interval.
        self.ping(ctx);
        ctx.run_interval(PING, |queue, ctx| queue.ping(ctx));
    }
}

impl Supervised for RetryQueue {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = ACTOR, "restarting retry queue; rebuilding it from disk");
        self.pending.clear();
        self.in_flight.clear();
        // `draining` stays: a restart during shutdown keeps draining.
    }
}
