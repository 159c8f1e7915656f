//! A typed handle to the file-tier actor that retries a request once when the actor
//! failed on it, so that requests arriving around a restart are answered.

use super::messages::{
    AdoptFile, AdoptFiles, ForgetTombstone, ListFiles, PurgeFile, ReadFile, RemoveFile, ReserveVersion, TouchFile,
    WasQuarantined, WriteFile,
};
use super::{FileLookup, FileTier, FileTierError, OnDisk};
use crate::domain::{CacheName, Document, NewDocument, Precondition};
use actix::Addr;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

/// Cheap to clone; the address survives restarts (actix keeps it).
#[derive(Clone)]
pub struct FileHandle {
    addr: Addr<FileTier>,
}

fn gone(e: actix::MailboxError) -> FileTierError {
    FileTierError::Io(io::Error::other(format!("file tier unavailable: {e}")))
}

impl FileHandle {
    /// Wraps the supervised address.
    pub fn new(addr: Addr<FileTier>) -> Self {
        Self { addr }
    }

    /// Whether the file of `name` was found corrupt and nothing was written since
    /// (false when the actor cannot say).
    pub async fn quarantined(&self, name: &CacheName) -> bool {
        self.call(WasQuarantined { name: name.clone() }).await.unwrap_or(false)
    }

    async fn call<M, T>(&self, msg: M) -> Result<T, FileTierError>
    where
        M: actix::Message<Result = Result<T, FileTierError>> + Clone + Send + 'static,
        T: Send + 'static,
        FileTier: actix::Handler<M>,
    {
        match self.addr.send(msg.clone()).await.map_err(gone)? {
            Err(FileTierError::Panicked(_)) => self.addr.send(msg).await.map_err(gone)?,
            other => other,
        }
    }

    /// See [`ReadFile`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn read(&self, name: CacheName) -> Result<FileLookup, FileTierError> {
        self.call(ReadFile { name }).await
    }

    /// See [`ForgetTombstone`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn forget_tombstone(&self, name: CacheName) -> Result<bool, FileTierError> {
        self.call(ForgetTombstone { name }).await
    }

    /// See [`WriteFile`].
    ///
    /// # Errors
    /// Precondition failure, I/O errors, or the actor failing twice.
    pub async fn write(
        &self,
        name: CacheName,
        doc: NewDocument,
        precondition: Precondition,
        floor: u64,
    ) -> Result<Arc<Document>, FileTierError> {
        self.call(WriteFile { name, doc, precondition, floor }).await
    }

    /// See [`ReserveVersion`]: `(version, base)`.
    ///
    /// # Errors
    /// Precondition failure, or the actor failing twice.
    pub async fn reserve(&self, name: CacheName, precondition: Precondition) -> Result<(u64, u64), FileTierError> {
        self.call(ReserveVersion { name, precondition }).await
    }

    /// See [`AdoptFile`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn adopt(&self, doc: Arc<Document>, expected: Option<u64>) -> Result<bool, FileTierError> {
        self.call(AdoptFile { doc, expected }).await
    }

    /// See [`AdoptFiles`]: one answer per document, in order.
    ///
    /// # Errors
    /// The actor failing twice (each document's I/O error is in its answer).
    pub async fn adopt_all(
        &self,
        docs: Vec<(Arc<Document>, Option<u64>)>,
    ) -> Result<Vec<Result<bool, FileTierError>>, FileTierError> {
        self.call(AdoptFiles { docs }).await
    }

    /// See [`TouchFile`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn touch(&self, doc: Arc<Document>) -> Result<bool, FileTierError> {
        self.call(TouchFile { doc }).await
    }

    /// See [`RemoveFile`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn remove(&self, name: CacheName) -> Result<bool, FileTierError> {
        self.call(RemoveFile { name, expected: None }).await
    }

    /// See [`RemoveFile`]: only while disk holds version `expected`, live.
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn remove_if(&self, name: CacheName, expected: u64) -> Result<bool, FileTierError> {
        self.call(RemoveFile { name, expected: Some(expected) }).await
    }

    /// See [`PurgeFile`].
    ///
    /// # Errors
    /// I/O errors, or the actor failing twice.
    pub async fn purge(&self, name: CacheName, cutoff: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, FileTierError> {
        self.call(PurgeFile { name, cutoff }).await
    }

    /// See [`ListFiles`].
    ///
    /// # Errors
    /// The actor failing twice or being gone.
    pub async fn list(&self) -> Result<HashMap<CacheName, OnDisk>, FileTierError> {
        for _ in 0..2 {
            if let Ok(Ok(index)) = self.addr.send(ListFiles).await {
                return Ok(index);
            }
        }
        Err(FileTierError::Io(io::Error::other("file tier unavailable")))
    }

    /// Whether the actor's mailbox is open (the supervisor's health check).
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
