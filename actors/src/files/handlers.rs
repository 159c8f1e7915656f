//! One handler per message; each runs inside the supervisor's panic guard and starts
//! with its failpoint.

use super::messages::{
    AdoptFile, AdoptFiles, ForgetTombstone, ListFiles, PurgeFile, ReadFile, RemoveFile, ReserveVersion, TouchFile,
    WasQuarantined, WriteFile,
};
use super::{FileLookup, FileTier, FileTierError, OnDisk, ACTOR};
use crate::domain::{CacheName, Document};
use crate::supervisor::{guard, ActorPanicked};
use actix::{Context, Handler};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

impl Handler<ReadFile> for FileTier {
    type Result = Result<FileLookup, FileTierError>;

    fn handle(&mut self, msg: ReadFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::read");
            if self.is_deleted(&msg.name) {
                return Ok(FileLookup { doc: None, deleted: true });
            }
            Ok(FileLookup { doc: self.read_verified(&msg.name)?.map(Arc::new), deleted: false })
        })?
    }
}

impl Handler<WriteFile> for FileTier {
    type Result = Result<Arc<Document>, FileTierError>;

    fn handle(&mut self, msg: WriteFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::write");
            self.write(&msg.name, msg.doc, &msg.precondition, msg.floor).map(Arc::new)
        })?
    }
}

impl Handler<ReserveVersion> for FileTier {
    type Result = Result<(u64, u64), FileTierError>;

    fn handle(&mut self, msg: ReserveVersion, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::write");
            self.reserve(&msg.name, &msg.precondition)
        })?
    }
}

impl Handler<AdoptFile> for FileTier {
    type Result = Result<bool, FileTierError>;

    fn handle(&mut self, msg: AdoptFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::write");
            Ok(self.adopt(&msg.doc, msg.expected)?)
        })?
    }
}

impl Handler<AdoptFiles> for FileTier {
    type Result = Result<Vec<Result<bool, FileTierError>>, FileTierError>;

    fn handle(&mut self, msg: AdoptFiles, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        Ok(guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::write");
            self.adopt_all(&msg.docs).into_iter().map(|r| r.map_err(FileTierError::from)).collect()
        })?)
    }
}

impl Handler<TouchFile> for FileTier {
    type Result = Result<bool, FileTierError>;

    fn handle(&mut self, msg: TouchFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("file::write");
            Ok(self.touch(&msg.doc)?)
        })?
    }
}

impl Handler<RemoveFile> for FileTier {
    type Result = Result<bool, FileTierError>;

    fn handle(&mut self, msg: RemoveFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || {
            let current = self.index().get(&msg.name);
            if msg.expected.is_some_and(|v| !current.is_some_and(|d| d.version == v && d.etag.is_some())) {
                return Ok(false);
            }
            Ok(self.remove(&msg.name)?)
        })?
    }
}

impl Handler<ListFiles> for FileTier {
    type Result = Result<HashMap<CacheName, OnDisk>, ActorPanicked>;

    fn handle(&mut self, _msg: ListFiles, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || self.index().clone())
    }
}

impl Handler<ForgetTombstone> for FileTier {
    type Result = Result<bool, FileTierError>;

    fn handle(&mut self, msg: ForgetTombstone, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || Ok(self.forget_tombstone(&msg.name)?))?
    }
}

impl Handler<PurgeFile> for FileTier {
    type Result = Result<Option<DateTime<Utc>>, FileTierError>;

    fn handle(&mut self, msg: PurgeFile, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        guard(ACTOR, &reporter, ctx, || Ok(self.purge_older(&msg.name, msg.cutoff)?))?
    }
}

impl Handler<WasQuarantined> for FileTier {
    type Result = Result<bool, FileTierError>;

    fn handle(&mut self, msg: WasQuarantined, ctx: &mut Context<Self>) -> Self::Result {
        let reporter = self.reporter.clone();
        Ok(guard(ACTOR, &reporter, ctx, || self.is_quarantined(&msg.name))?)
    }
}
