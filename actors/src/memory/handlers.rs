//! One handler per message, each inside the supervisor's panic guard.

use super::messages::{Follow, Get, Load, LoadDone, LoadOutcome};
use super::{Entry, LoadError, Loading, MemoryTier, ServedFrom, Waiter, ACTOR};
use crate::domain::CacheName;
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
            if let Some(loading) = self.loads.get_mut(&msg.name) {
                loading.waiters.push(tx);
                return Ok((rx, None));
            }
            Ok((rx, Some(tx)))
        });
        let rx = match started {
            Err(panicked) => return Box::pin(async move { Err(LoadError::Panicked(panicked)) }),
            Ok(Err(hit)) => return Box::pin(async move { Ok(hit) }),
            Ok(Ok((rx, first))) => {
                if let Some(tx) = first {
                    self.start_load(msg.name, vec![tx], ctx);
                }
                rx
            }
        };
        Box::pin(async move { rx.await.unwrap_or(Err(LoadError::Restarted)) })
    }
}

impl MemoryTier {
    /// Reads `name` through the tiers below for `waiters`, marked first: what the load
    /// finds is stored only if the cache was not evicted while it ran.
    fn start_load(&mut self, name: CacheName, waiters: Vec<Waiter>, ctx: &mut Context<Self>) {
        let mark = self.shelf.mark(&name);
        self.loads.insert(name.clone(), Loading { waiters, mark: mark.clone() });
        let loader = self.loader.clone();
        let reporter = self.reporter.clone();
        let me = ctx.address();
        spawn_guarded(ActorId::Memory, reporter.clone(), async move {
            let result = guard_async(ACTOR, reporter, loader.load(name.clone())).await;
            // Tests hold a load's result here, its reads done, to delete the cache meanwhile.
            crate::pause_point::pause_point("memory::loaded").await;
            me.do_send(LoadDone { name, mark, result });
        });
    }
}

impl Handler<LoadDone> for MemoryTier {
    type Result = ();

    fn handle(&mut self, msg: LoadDone, ctx: &mut Context<Self>) {
        // Not this load's after a restart: nobody waits on it, and memory must not take
        // what it read before the restart.
        if !self.loads.get(&msg.name).is_some_and(|loading| loading.mark.same(&msg.mark)) {
            return;
        }
        let Some(Loading { waiters, mark }) = self.loads.remove(&msg.name) else { return };
        let panicked = msg.result.is_err();
        let outcome = match msg.result {
            Ok(Ok(Some((doc, tier)))) => match self.shelf.store_marked(doc, &mark) {
                Some(entry) => Ok(LoadOutcome::Found(entry, tier)),
                None => {
                    // Evicted (deleted) while the load ran: what it read may be the
                    // deleted version. Read again, for the same readers.
                    self.start_load(msg.name, waiters, ctx);
                    return;
                }
            },
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
        guard(ACTOR, &reporter, ctx, || self.follow(msg.doc, &msg.mark))
    }
}
