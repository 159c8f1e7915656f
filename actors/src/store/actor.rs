//! Lifecycle of the store actor.

use super::{Store, ACTOR};
use actix::{Actor, Context, Supervised};

impl Actor for Store {
    type Context = Context<Self>;
}

impl Supervised for Store {
    /// The pool survives a restart: its connections hold no state of a failed request
    /// (deadpool checks each one before reuse).
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = ACTOR, "restarting store");
    }
}
