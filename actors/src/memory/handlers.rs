//! One handler per message, each inside the supervisor's panic guard.

use super::messages::{Follow, Get, Load, LoadDone, LoadOutcome};
use super::{Entry, LoadError, MemoryTier, ServedFrom, ACTOR};
use crate::supervisor::{guard, guard_async, spawn_guarded, ActorId, ActorPanicked};
use actix::{ActorContext, AsyncContext, Context, Handler, ResponseFuture};
use std::sync::Arc;
use tokio::sync::oneshot;

impl Handler<Get> for MemoryTier {
    type Result = Result<Option<Arc<Entry>>, ActorPanicked>;

    fn handle(&mut self, msg: Get, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("memory::get");
            self.entry(&msg.name)
        })
    }
}

impl Handler<Load> for MemoryTier {
    type Result = ResponseFuture<Result<LoadOutcome, LoadError>>;

    fn handle(&mut self, msg: Load, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        let started = guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("memory::get");
            if let Some(entry) = self.entry(&msg.name).filter(|e| e.is_fresh(self.ttl)) {
                return Err(LoadOutcome::Found(entry, ServedFrom::Memory));
            }
            let (tx, rx) = oneshot::channel();
            let waiters = self.loads.entry(msg.name.clone()).or_default();
            waiters.push(tx);
            Ok((rx, waiters.len() == 1))
        });
        let rx = match started {
            Err(panicked) => return Box::pin(async move { Err(LoadError::Panicked(panicked)) }),
            Ok(Err(hit)) => return Box::pin(async move { Ok(hit) }),
            Ok(Ok((rx, first))) => {
                if first {
                    let loader = self.loader.clone();
                    let me = ctx.address();
                    let name = msg.name;
                    spawn_guarded(ActorId::Memory, reporter.clone(), async move {
                        let result = guard_async(ACTOR, reporter, loader.load(name.clone())).await;
                        me.do_send(LoadDone { name, result });
                    });
                }
                rx
            }
        };
        Box::pin(async move { rx.await.unwrap_or(Err(LoadError::Restarted)) })
    }
}

impl Handler<LoadDone> for MemoryTier {
    type Result = ();

    fn handle(&mut self, msg: LoadDone, ctx: &mut Context<Self>) {
        let waiters = self.loads.remove(&msg.name).unwrap_or_default();
        let panicked = msg.result.is_err();
        let outcome = match msg.result {
            Ok(Ok(Some((doc, tier)))) => Ok(LoadOutcome::Found(self.store(doc), tier)),
            Ok(Ok(None)) => Ok(LoadOutcome::Missing),
            Ok(Err(e)) => Err(e),
            Err(panicked) => Err(LoadError::LoadPanicked(panicked)),
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
        if panicked {
            // Already reported by `guard_async`: restart with nothing half-done.
            ctx.stop();
        }
    }
}

impl Handler<Follow> for MemoryTier {
    type Result = Result<bool, ActorPanicked>;

    fn handle(&mut self, msg: Follow, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || self.follow(msg.doc))
    }
}
