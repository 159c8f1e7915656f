//! One handler per message. The synchronous start (where the failpoint sits) runs in
//! the supervisor's guard; the statement itself runs as a future on the actor's thread.

use super::messages::{
    DeleteAudited, DeleteRow, DeleteState, LoadState, Ping, PurgeUnconfigured, ReadHeads, ReadRow, Reconnect,
    RecordCheck, Restart, RetentionRows, SaveState, TryLead, WriteConditional, WriteOutcome, WriteRow,
};
use super::{CasOutcome, RowHead, Store, StoreError, UnconfiguredRow, ACTOR};
use crate::domain::Document;
use crate::supervisor::{guard, guard_async};
use actix::{ActorContext, AsyncContext, Context, Handler, ResponseFuture};
use std::sync::Arc;

impl Store {
    fn start<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        failpoint: bool,
        f: impl FnOnce(Store) -> ResponseFuture<Result<T, StoreError>>,
    ) -> ResponseFuture<Result<T, StoreError>> {
        let reporter = self.reporter.clone();
        let me = self.clone();
        match guard(ACTOR, &reporter, ctx, || {
            if failpoint {
                fail::fail_point!("store::read");
            } else {
                fail::fail_point!("store::write");
            }
        }) {
            Ok(()) => {
                let statement = f(me);
                let myself = ctx.address();
                Box::pin(async move {
                    let in_flight = async move {
                        fail::fail_point!("store::query");
                        statement.await
                    };
                    match guard_async(ACTOR, reporter, in_flight).await {
                        Ok(result) => result,
                        Err(panicked) => {
                            // Already reported: restart the actor; the caller sees a
                            // transient error and retries as after any failure.
                            myself.do_send(Restart);
                            Err(StoreError::Panicked(panicked))
                        }
                    }
                })
            }
            Err(panicked) => Box::pin(async move { Err(StoreError::Panicked(panicked)) }),
        }
    }
}

const READ: bool = true;
const WRITE: bool = false;

impl Handler<ReadRow> for Store {
    type Result = ResponseFuture<Result<Option<Arc<Document>>, StoreError>>;

    fn handle(&mut self, msg: ReadRow, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { Ok(s.read_one(&msg.name).await?.map(Arc::new)) }))
    }
}

impl Handler<ReadHeads> for Store {
    type Result = ResponseFuture<Result<Vec<RowHead>, StoreError>>;

    fn handle(&mut self, _msg: ReadHeads, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { s.read_heads().await }))
    }
}

impl Handler<WriteRow> for Store {
    type Result = ResponseFuture<Result<WriteOutcome, StoreError>>;

    fn handle(&mut self, msg: WriteRow, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.write(&msg.doc, msg.retention_days, msg.known).await }))
    }
}

impl Handler<WriteConditional> for Store {
    type Result = ResponseFuture<Result<CasOutcome, StoreError>>;

    fn handle(&mut self, msg: WriteConditional, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| {
            Box::pin(async move { s.write_conditional(&msg.doc, msg.version, msg.retention_days, msg.expected).await })
        })
    }
}

impl Handler<RecordCheck> for Store {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, msg: RecordCheck, ctx: &mut Context<Self>) -> Self::Result {
        let checked_at = msg.doc.last_fetch.unwrap_or_else(chrono::Utc::now);
        self.start(ctx, WRITE, |s| Box::pin(async move { s.record_check(&msg.doc, checked_at).await }))
    }
}

impl Handler<DeleteAudited> for Store {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, msg: DeleteAudited, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { s.delete_audited(&msg.name, msg.version).await }))
    }
}

impl Handler<DeleteRow> for Store {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: DeleteRow, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.delete(&msg.name, msg.version).await }))
    }
}

impl Handler<PurgeUnconfigured> for Store {
    type Result = ResponseFuture<Result<Vec<UnconfiguredRow>, StoreError>>;

    fn handle(&mut self, msg: PurgeUnconfigured, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.purge_unconfigured(&msg.keep).await }))
    }
}

impl Handler<RetentionRows> for Store {
    type Result = ResponseFuture<Result<Vec<UnconfiguredRow>, StoreError>>;

    fn handle(&mut self, msg: RetentionRows, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.retention_rows(&msg.configured).await }))
    }
}

impl Handler<Ping> for Store {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, _msg: Ping, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { s.ping().await }))
    }
}

impl Handler<TryLead> for Store {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, msg: TryLead, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { s.try_lead(&msg.name).await }))
    }
}

impl Handler<SaveState> for Store {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: SaveState, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.save_state(&msg.key, &msg.state).await }))
    }
}

impl Handler<DeleteState> for Store {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: DeleteState, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, WRITE, |s| Box::pin(async move { s.delete_state(&msg.key).await }))
    }
}

impl Handler<LoadState> for Store {
    type Result = ResponseFuture<Result<Option<serde_json::Value>, StoreError>>;

    fn handle(&mut self, msg: LoadState, ctx: &mut Context<Self>) -> Self::Result {
        self.start(ctx, READ, |s| Box::pin(async move { s.load_state(&msg.key).await }))
    }
}

impl Handler<Reconnect> for Store {
    type Result = Result<bool, super::PoolError>;

    fn handle(&mut self, msg: Reconnect, _ctx: &mut Context<Self>) -> Self::Result {
        let changed = self.reconnect(msg.0)?;
        if changed {
            tracing::info!(actor = ACTOR, "Postgres connection settings changed; new connections use them");
        }
        Ok(changed)
    }
}

impl Handler<Restart> for Store {
    type Result = ();

    fn handle(&mut self, _msg: Restart, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
