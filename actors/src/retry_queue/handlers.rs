//! Handlers, the tick that starts attempts, and what an attempt's result does.

use super::messages::{Drain, EnqueueDelete, EnqueueWrite, MarkSynced, PendingCaches, Reconcile, Retune};
use super::{settle_rule, Ended, Op, Peers, RetryQueue, Settlement, ACTOR};
use crate::cache_rules::retention_days_of;
use crate::domain::{CacheName, Document};
use crate::files::{FileTierError, OnDisk};
use crate::metrics::{CacheLabel, ResultLabel};
use crate::save_flow::{Adopter, InMemory};
use crate::store::{StoreError, WriteOutcome};
use crate::supervisor::{guard, guard_async, GuardedContext};
use actix::{ActorContext, ActorFutureExt, Context, Handler, MessageResult, WrapFuture};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait between attempts while draining for shutdown.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// How one attempt ended.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Postgres holds the envelope that was at version `sent`; disk is now at `local_now`
    /// (higher when Postgres gave the save a version above its row).
    Synced { sent: u64, local_now: u64 },
    /// The row is gone and the tombstone dropped.
    Deleted,
    /// Nothing on disk to send (deleted or corrupt meanwhile).
    Nothing,
    /// The file tier could not read the envelope or the tombstone: retried, and no news
    /// about Postgres.
    FileTier(FileTierError),
    /// Postgres failed.
    Failed(StoreError),
}

/// Sends the delete of `name` with its tombstone's version (the newest version known
/// here when it was deleted, from `index`): a row saved elsewhere after that stays.
async fn delete(peers: &Peers, name: &CacheName, index: &HashMap<CacheName, OnDisk>) -> Result<(), StoreError> {
    let Some(version) = index.get(name).filter(|d| d.deleted).map(|d| d.version) else {
        // Saved again since: the write that follows replaces the row.
        return Ok(());
    };
    // Version 0: deleted here before any version of it was known (Postgres away since
    // the start); whatever the row holds was made before, and goes.
    let version = if version == 0 { u64::MAX } else { version };
    peers.store.delete(name.clone(), version).await
}

/// `known`: the row version this instance last knew (what Postgres confirmed or what was
/// adopted from it); the write is a compare-and-set on it.
async fn attempt(peers: Peers, name: CacheName, op: Op, retention_days: u32, known: Option<u64>) -> Attempt {
    fail::fail_point!("retry::attempt");
    match op {
        Op::Delete => match peers.files.list().await {
            Err(e) => Attempt::FileTier(e),
            Ok(index) => match delete(&peers, &name, &index).await {
                Ok(()) => {
                    if let Err(e) = peers.files.forget_tombstone(name.clone()).await {
                        tracing::warn!(cache = %name, error = %e, "tombstone kept; the delete will be sent again");
                    }
                    Attempt::Deleted
                }
                Err(e) => Attempt::Failed(e),
            },
        },
        Op::Write(_) => {
            let lookup = match peers.files.read(name.clone()).await {
                Ok(l) => l,
                Err(e) => return Attempt::FileTier(e),
            };
            let Some(doc) = lookup.doc else { return Attempt::Nothing };
            match peers.store.write(doc.clone(), retention_days, known).await {
                // Superseded: the newer row reaches this instance as any other's does.
                Ok(WriteOutcome::Written | WriteOutcome::Superseded { .. }) => {
                    Attempt::Synced { sent: doc.version, local_now: doc.version }
                }
                Ok(WriteOutcome::Rebased { version }) => {
                    adopt_in_place(&peers, &doc, Arc::new(doc.at_version(version))).await
                }
                Ok(WriteOutcome::Yielded { doc: winner }) => adopt_in_place(&peers, &doc, winner).await,
                Err(e) => Attempt::Failed(e),
            }
        }
    }
}

/// Postgres now holds `now` in place of the save `sent` (rebased, or yielded to a later
/// save): disk and memory take it only if disk still holds the version sent, so a save
/// made since stays.
async fn adopt_in_place(peers: &Peers, sent: &Document, now: Arc<Document>) -> Attempt {
    let version = now.version;
    let adopter = Adopter::new(peers.files.clone(), peers.memory.clone());
    let local_now = match adopter.adopt(now, Some(sent.version), InMemory::Fill).await {
        Ok(true) => version,
        _ => sent.version,
    };
    Attempt::Synced { sent: sent.version, local_now }
}

impl RetryQueue {
    pub(super) fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let files = self.peers.files.clone();
        ctx.wait_guarded(
            ACTOR,
            &self.reporter,
            async move { files.list().await }.into_actor(self).map(|index, queue, _ctx| match index {
                Ok(index) => {
                    for (name, on_disk) in index {
                        if on_disk.deleted {
                            queue.enqueue(name, Op::Delete);
                        } else if on_disk.etag.is_some() && on_disk.version > queue.settled_version(&name) {
                            queue.enqueue(name, Op::Write(on_disk.version));
                        }
                    }
                    tracing::info!(actor = ACTOR, pending = queue.depth(), "retry queue rebuilt from disk");
                }
                Err(e) => tracing::error!(actor = ACTOR, alert = true, error = %e, "cannot rebuild the retry queue"),
            }),
        );
    }

    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        let due = self.due(false);
        if due.is_empty() {
            if !self.pending.is_empty() {
                self.publish(); // keeps the oldest-age gauge moving
            }
            return;
        }
        let reporter = self.reporter.clone();
        let started = guard(ACTOR, &reporter, ctx, || {
            fail::fail_point!("retry::drain");
        });
        if started.is_err() {
            return;
        }
        for (name, op) in due {
            self.in_flight.insert(name.clone());
            let retention = retention_days_of(&self.config.retention_days, &name);
            let known = self.synced.get(&name).copied();
            let fut =
                guard_async(ACTOR, reporter.clone(), attempt(self.peers.clone(), name.clone(), op, retention, known));
            ctx.spawn_guarded(
                ACTOR,
                &reporter,
                fut.into_actor(self).map(move |result, queue, ctx| match result {
                    Ok(result) => queue.settle(name, op, result),
                    // Already reported: the restart rebuilds the queue from disk, so the
                    // save is sent again; nothing waits on an attempt.
                    Err(_) => ctx.stop(),
                }),
            );
        }
    }

    pub(super) fn ping(&mut self, ctx: &mut Context<Self>) {
        if !self.in_flight.is_empty() {
            return;
        }
        let store = self.peers.store.clone();
        ctx.spawn_guarded(
            ACTOR,
            &self.reporter,
            async move { store.ping().await }.into_actor(self).map(|result, queue, _| {
                match result {
                    Ok(()) => queue.postgres_reached(),
                    Err(e) => queue.postgres_failed(&e),
                }
                queue.publish();
            }),
        );
    }

    /// A statement reached Postgres: an outage in progress ends (logged).
    fn postgres_reached(&mut self) {
        let change = self.outage.reached();
        self.outage.log(&change, ACTOR);
        self.metrics.postgres_up.set(1);
    }

    /// A statement failed: an outage starts or goes on (logged once). An error that is
    /// no outage (the statement's own, a conflict) came from a Postgres that answers.
    fn postgres_failed(&mut self, error: &StoreError) {
        if !error.is_outage() {
            return self.postgres_reached();
        }
        let change = self.outage.failed(error);
        self.outage.log(&change, ACTOR);
        self.metrics.postgres_up.set(0);
    }

    /// The entry's operation and rejections, and what [`settle_rule`] makes of `ended`.
    fn settlement(&self, name: &CacheName, op: Op, ended: Ended) -> Settlement {
        let pending = self.pending.get(name).map(|p| (p.op, p.rejections));
        settle_rule(pending, op, ended, self.config.policy.enabled, self.config.policy.max_attempts)
    }

    /// Applies the parts of a settlement that concern a finished attempt.
    fn finish(&mut self, name: &CacheName, settlement: Settlement) {
        match settlement {
            Settlement::Done => {
                self.pending.remove(name);
            }
            Settlement::Newer => {
                if let Some(p) = self.pending.get_mut(name) {
                    // What is still pending was saved while this write was in flight:
                    // its age starts then, not when the cache first fell behind.
                    p.since = p.newer_since.take().unwrap_or_else(Utc::now);
                }
            }
            _ => {}
        }
    }

    fn settle(&mut self, name: CacheName, op: Op, result: Attempt) {
        self.in_flight.remove(&name);
        self.blocked = match &result {
            Attempt::Failed(StoreError::NoProject(project)) => {
                Some(format!("project {project:?} is not registered in Postgres"))
            }
            Attempt::Failed(_) | Attempt::FileTier(_) => self.blocked.take(),
            _ => None,
        };
        let reached = matches!(result, Attempt::Synced { .. } | Attempt::Deleted);
        if self.config.policy.enabled && matches!(&result, Attempt::Failed(e) if e.is_transient()) {
            self.recovering.get_or_insert(0);
        }
        let count = |queue: &Self, result: &'static str| {
            queue.metrics.postgres_writes.get_or_create(&ResultLabel { result }).inc();
        };
        match result {
            Attempt::Synced { sent, local_now } => {
                count(self, "ok");
                self.postgres_reached();
                self.synced.insert(name.clone(), local_now);
                self.save_synced();
                let settlement = self.settlement(&name, op, Ended::Synced { sent, local_now });
                self.finish(&name, settlement);
                tracing::debug!(cache = %name, version = local_now, "in Postgres");
            }
            Attempt::Deleted => {
                count(self, "ok");
                self.postgres_reached();
                self.synced.remove(&name);
                self.save_synced();
                let settlement = self.settlement(&name, op, Ended::Deleted);
                self.finish(&name, settlement);
                tracing::info!(cache = %name, "delete reached Postgres");
            }
            Attempt::Nothing => {
                let settlement = self.settlement(&name, op, Ended::Nothing);
                self.finish(&name, settlement);
            }
            Attempt::Failed(error) => self.failed(name, op, error, true),
            // Retried like a transient failure; it says nothing about Postgres.
            Attempt::FileTier(e) => self.failed(name, op, StoreError::Transient(format!("file tier: {e}")), false),
        }
        self.note_recovery(reached);
        self.publish();
    }

    /// Counts saves that reached Postgres after a failure; once nothing is pending or in
    /// flight, logs how many went through, so an operator sees the outage end.
    fn note_recovery(&mut self, reached: bool) {
        if let (Some(count), true) = (self.recovering.as_mut(), reached) {
            *count += 1;
        }
        if let Some(count) = self.recovering.filter(|_| self.pending.is_empty() && self.in_flight.is_empty()) {
            self.recovering = None;
            tracing::info!(actor = ACTOR, saves = count, "retry queue drained: {count} saves reached Postgres");
        }
    }

    fn failed(&mut self, name: CacheName, op: Op, error: StoreError, from_postgres: bool) {
        let transient = error.is_transient();
        if from_postgres {
            self.metrics
                .postgres_writes
                .get_or_create(&ResultLabel { result: if transient { "error" } else { "rejected" } })
                .inc();
            self.postgres_failed(&error);
        }
        let settlement = self.settlement(&name, op, if transient { Ended::Transient } else { Ended::Rejected });
        if settlement == Settlement::LeaveOnDisk {
            self.pending.remove(&name);
            tracing::warn!(cache = %name, error = %error,
                "background retry is off: the save stays on disk and is sent at the next start");
            return;
        }
        let draining = self.draining;
        let Some(p) = self.pending.get_mut(&name) else { return };
        let mut wait = p.backoff.next_wait();
        if draining {
            wait = wait.min(DRAIN_WAIT);
        }
        p.next_at = Instant::now() + wait;
        if settlement == Settlement::RetryTransient {
            p.rejections = 0;
            if error.is_outage() {
                // The outage's own line says what is wrong and what to do.
                tracing::debug!(cache = %name, error = %error, retry_in_ms = wait.as_millis() as u64, "Postgres write failed; will retry");
            } else if draining {
                // The shutdown's own lines say what is left; one WARN per retry would
                // flood the log four times a second.
                tracing::debug!(cache = %name, error = %error, "Postgres write failed while draining; will retry");
            } else {
                tracing::warn!(cache = %name, error = %error, retry_in_ms = wait.as_millis() as u64, "Postgres write failed; will retry");
            }
            return;
        }
        p.rejections += 1;
        tracing::warn!(cache = %name, error = %error, attempt = p.rejections, "Postgres rejected the write");
        if settlement == Settlement::DeadLetter {
            self.dead_letter(&name, op, &error);
        }
    }

    /// Moves a save Postgres keeps rejecting out of the way, so it blocks nothing.
    fn dead_letter(&mut self, name: &CacheName, op: Op, error: &StoreError) {
        let version = match op {
            Op::Write(v) => v,
            Op::Delete => 0,
        };
        let dir = self.config.data_dir.join("dead-letter");
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let envelope = std::fs::read(self.config.data_dir.join("caches").join(format!("{name}.json"))).ok();
        let record = serde_json::json!({
            "name": name.as_str(),
            "operation": if op == Op::Delete { "delete" } else { "write" },
            "version": version,
            "error": error.to_string(),
            "dead_lettered_at": Utc::now().to_rfc3339(),
            "envelope": envelope.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
        });
        let path = dir.join(format!("{name}.{stamp}.json"));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::files::durable::write_atomic(&path, record.to_string().as_bytes()));
        tracing::error!(
            cache = %name, version, alert = true, error = %error, dead_letter = %path.display(),
            written = written.is_ok(), "Postgres rejected this save for good; moved to the dead letter"
        );
        self.metrics.dead_letters.get_or_create(&CacheLabel { cache: name.to_string() }).inc();
        // Not sent again when the queue rebuilds itself, and never shown as synced:
        // Postgres does not hold it.
        if let Op::Write(v) = op {
            self.dead_lettered.insert(name.clone(), v);
            self.save_dead_lettered();
        }
        self.pending.remove(name);
    }
}

impl Handler<EnqueueWrite> for RetryQueue {
    type Result = ();

    fn handle(&mut self, msg: EnqueueWrite, ctx: &mut Context<Self>) {
        self.enqueue(msg.name, Op::Write(msg.version));
        self.tick(ctx);
    }
}

impl Handler<EnqueueDelete> for RetryQueue {
    type Result = ();

    fn handle(&mut self, msg: EnqueueDelete, ctx: &mut Context<Self>) {
        self.enqueue(msg.name, Op::Delete);
        self.tick(ctx);
    }
}

impl Handler<MarkSynced> for RetryQueue {
    type Result = ();

    fn handle(&mut self, msg: MarkSynced, _ctx: &mut Context<Self>) {
        let known = self.synced.entry(msg.name.clone()).or_insert(0);
        *known = (*known).max(msg.version);
        if self.pending.get(&msg.name).is_some_and(|p| matches!(p.op, Op::Write(v) if v <= msg.version))
            && !self.in_flight.contains(&msg.name)
        {
            self.pending.remove(&msg.name);
        }
        self.save_synced();
        self.publish();
    }
}

impl Handler<Reconcile> for RetryQueue {
    type Result = ();

    fn handle(&mut self, _msg: Reconcile, ctx: &mut Context<Self>) {
        self.reconcile(ctx);
    }
}

impl Handler<PendingCaches> for RetryQueue {
    type Result = MessageResult<PendingCaches>;

    fn handle(&mut self, _msg: PendingCaches, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.pending.keys().cloned().collect())
    }
}

impl Handler<Drain> for RetryQueue {
    type Result = ();

    fn handle(&mut self, _msg: Drain, ctx: &mut Context<Self>) {
        self.draining = true;
        let now = Instant::now();
        for p in self.pending.values_mut() {
            p.next_at = p.next_at.min(now);
        }
        self.tick(ctx);
    }
}

impl Handler<Retune> for RetryQueue {
    type Result = ();

    fn handle(&mut self, msg: Retune, _ctx: &mut Context<Self>) {
        let policy = msg.policy;
        if !policy.same_waits(&self.config.policy) {
            for p in self.pending.values_mut() {
                p.backoff = policy.schedule();
            }
        }
        self.config.policy = policy;
        self.config.retention_days = msg.retention_days;
        self.publish();
        tracing::info!(
            actor = ACTOR,
            enabled = policy.enabled,
            max_attempts = policy.max_attempts,
            initial_interval_ms = policy.backoff.initial_interval.as_millis() as u64,
            max_interval_ms = policy.backoff.max_interval.as_millis() as u64,
            multiplier = policy.backoff.multiplier,
            "retry queue settings reloaded"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{FileHandle, FileTier};
    use crate::memory::{MemoryHandle, MemoryTier};
    use crate::metrics::Metrics;
    use crate::retry_queue::{BackoffPolicy, RetryConfig, RetryPolicy};
    use crate::store::{Store, StoreHandle};
    use crate::supervisor::FailureReporter;
    use actix::{Actor, AsyncContext};

    /// The address of an actor that is gone: every message to it fails at once.
    fn gone<A: Actor<Context = Context<A>>>() -> actix::Addr<A> {
        Context::<A>::new().address()
    }

    /// A delete whose tombstone cannot be looked up because the file tier is gone says
    /// nothing about Postgres: an outage in progress stays one (`postgres_up` 0) and no
    /// Postgres write is counted.
    /// Peers that are all gone.
    fn gone_peers() -> Peers {
        Peers {
            files: FileHandle::new(gone::<FileTier>()),
            memory: MemoryHandle::new(gone::<MemoryTier>(), std::sync::Arc::default()),
            store: StoreHandle::new(gone::<Store>()),
        }
    }

    fn config(dir: &std::path::Path) -> RetryConfig {
        RetryConfig {
            data_dir: dir.to_path_buf(),
            policy: RetryPolicy {
                enabled: true,
                backoff: BackoffPolicy {
                    initial_interval: Duration::from_secs(1),
                    max_interval: Duration::from_secs(5),
                    multiplier: 2.0,
                },
                max_attempts: 3,
            },
            retention_days: Default::default(),
        }
    }

    /// A save announced before its file is written is pending for the listener's check
    /// and for the startup sync's plan until its announcement is dropped (after the
    /// enqueue): neither adopts another instance's row over it meanwhile.
    #[actix_rt::test]
    async fn an_announced_save_is_pending_until_its_announcement_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (queue, view) = RetryQueue::new(config(dir.path()), gone_peers(), FailureReporter::detached(), metrics);
        let handle = crate::retry_queue::RetryQueueHandle::new(queue.start(), view);
        let name = CacheName::parse("announced").unwrap();
        assert!(!handle.is_pending(&name));
        let first = handle.announce(&name);
        let second = handle.announce(&name);
        assert!(handle.is_pending(&name));
        assert!(handle.pending().await.unwrap().contains(&name));
        drop(first);
        assert!(handle.is_pending(&name), "another save of the cache is still on its way");
        drop(second);
        assert!(!handle.is_pending(&name));
        assert!(!handle.pending().await.unwrap().contains(&name));
    }

    #[actix_rt::test]
    async fn a_file_tier_failure_in_a_delete_leaves_postgres_up_alone() {
        let dir = tempfile::tempdir().unwrap();
        let peers = gone_peers();
        let metrics = Arc::new(Metrics::new());
        let (mut queue, _view) =
            RetryQueue::new(config(dir.path()), peers.clone(), FailureReporter::detached(), metrics.clone());
        queue.postgres_failed(&StoreError::Unavailable("connection refused".into()));
        assert_eq!(metrics.postgres_up.get(), 0);

        let name = CacheName::parse("gone-file-tier").unwrap();
        let result = attempt(peers, name.clone(), Op::Delete, 30, None).await;
        assert!(matches!(result, Attempt::FileTier(_)), "{result:?}");
        queue.settle(name, Op::Delete, result);
        assert_eq!(metrics.postgres_up.get(), 0, "Postgres was never asked");
        let errors = metrics.postgres_writes.get_or_create(&ResultLabel { result: "error" }).get();
        assert_eq!(errors, 0, "no Postgres write was made");
    }
}
