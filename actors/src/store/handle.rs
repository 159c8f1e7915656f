//! A typed handle to the store actor; a request the actor failed on is tried once more.

use super::messages::{
    DeleteAudited, DeleteRow, DeleteState, LoadState, Ping, PurgeUnconfigured, ReadHeads, ReadRow, Reconnect,
    RecordCheck, RetentionRows, SaveState, TryLead, WriteConditional, WriteOutcome, WriteRow,
};
use super::{CasOutcome, RowHead, Store, StoreError, UnconfiguredRow};
use crate::domain::{CacheName, Document};
use actix::Addr;
use std::sync::Arc;

/// Cheap to clone; the address survives restarts.
#[derive(Clone)]
pub struct StoreHandle {
    addr: Addr<Store>,
}

impl StoreHandle {
    /// Wraps the supervised address.
    pub fn new(addr: Addr<Store>) -> Self {
        Self { addr }
    }

    async fn call<M, T>(&self, msg: M) -> Result<T, StoreError>
    where
        M: actix::Message<Result = Result<T, StoreError>> + Clone + Send + 'static,
        T: Send + 'static,
        Store: actix::Handler<M>,
    {
        let gone = |e: actix::MailboxError| StoreError::Unavailable(format!("store actor unavailable: {e}"));
        match self.addr.send(msg.clone()).await.map_err(gone)? {
            Err(StoreError::Panicked(_)) => self.addr.send(msg).await.map_err(gone)?,
            other => other,
        }
    }

    /// See [`ReadRow`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn read(&self, name: CacheName) -> Result<Option<Arc<Document>>, StoreError> {
        self.call(ReadRow { name }).await
    }

    /// See [`ReadHeads`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn read_heads(&self) -> Result<Vec<RowHead>, StoreError> {
        self.call(ReadHeads).await
    }

    /// See [`WriteRow`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write(
        &self,
        doc: Arc<Document>,
        retention_days: u32,
        known: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        self.call(WriteRow { doc, retention_days, known }).await
    }

    /// See [`WriteConditional`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write_conditional(
        &self,
        doc: Arc<Document>,
        version: u64,
        retention_days: u32,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        self.call(WriteConditional { doc, version, retention_days, expected }).await
    }

    /// [`WriteConditional`] sent once, never again: a compare-and-set whose outcome is
    /// unknown (the actor failed on it) must not be applied twice.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn write_once(
        &self,
        doc: Arc<Document>,
        version: u64,
        retention_days: u32,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        let msg = WriteConditional { doc, version, retention_days, expected };
        self.addr.send(msg).await.map_err(|e| StoreError::Unavailable(format!("store actor unavailable: {e}")))?
    }

    /// See [`RecordCheck`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_check(&self, doc: Arc<Document>) -> Result<bool, StoreError> {
        self.call(RecordCheck { doc }).await
    }

    /// See [`DeleteAudited`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_audited(&self, name: CacheName, version: u64) -> Result<bool, StoreError> {
        self.call(DeleteAudited { name, version }).await
    }

    /// See [`DeleteRow`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete(&self, name: CacheName, version: u64) -> Result<(), StoreError> {
        self.call(DeleteRow { name, version }).await
    }

    /// See [`PurgeUnconfigured`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn purge_unconfigured(&self, keep: Vec<CacheName>) -> Result<Vec<UnconfiguredRow>, StoreError> {
        self.call(PurgeUnconfigured { keep }).await
    }

    /// See [`RetentionRows`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn retention_rows(&self, configured: Vec<(CacheName, u32)>) -> Result<Vec<UnconfiguredRow>, StoreError> {
        self.call(RetentionRows { configured }).await
    }

    /// See [`TryLead`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn try_lead(&self, name: CacheName) -> Result<bool, StoreError> {
        self.call(TryLead { name }).await
    }

    /// See [`SaveState`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn save_state(&self, key: String, state: serde_json::Value) -> Result<(), StoreError> {
        self.call(SaveState { key, state }).await
    }

    /// See [`DeleteState`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_state(&self, key: String) -> Result<(), StoreError> {
        self.call(DeleteState { key }).await
    }

    /// See [`LoadState`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn load_state(&self, key: String) -> Result<Option<serde_json::Value>, StoreError> {
        self.call(LoadState { key }).await
    }

    /// See [`Reconnect`]: whether the settings changed.
    ///
    /// # Errors
    /// [`ReconnectError`]: the settings refused (the running pool is kept), or no actor.
    pub async fn reconnect(&self, connect: super::ConnectConfig) -> Result<bool, ReconnectError> {
        Ok(self.addr.send(Reconnect(connect)).await??)
    }

    /// See [`Ping`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(Ping).await
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}

/// Why new connection settings were not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReconnectError {
    /// What is wrong with the URL or the TLS settings, and under which key.
    #[error(transparent)]
    Refused(#[from] super::PoolError),
    /// The store actor did not take the message (stopped or restarting).
    #[error("store actor unavailable: {0}")]
    Unavailable(#[from] actix::MailboxError),
}
