//! A typed handle to the refresher.

use super::messages::{Begin, Observed, Quiesce, Reconfigure, RefreshAll, RefreshNow, StravaPush};
use super::push::{PushEvent, PushIntake};
use super::{RefreshCache, RefreshError, RefreshView, Refresher};
use crate::domain::{CacheName, Document};
use actix::Addr;
use std::sync::Arc;

/// Cheap to clone; the address survives restarts.
#[derive(Clone)]
pub struct RefresherHandle {
    addr: Addr<Refresher>,
    view: RefreshView,
    /// Bounds the webhook events sent and not yet taken in.
    intake: Arc<PushIntake>,
}

impl RefresherHandle {
    /// Wraps the supervised address and the view its actor publishes to.
    pub fn new(addr: Addr<Refresher>, view: RefreshView) -> Self {
        Self { addr, view, intake: Arc::default() }
    }

    /// The caches whose last refresh failed (no message).
    pub fn view(&self) -> &RefreshView {
        &self.view
    }

    /// See [`Begin`].
    pub fn begin(&self) {
        self.addr.do_send(Begin);
    }

    /// See [`RefreshNow`]; with `wait`, the document the refresh produced.
    ///
    /// # Errors
    /// [`RefreshError`].
    pub async fn refresh_now(&self, name: CacheName, wait: bool) -> Result<Option<Arc<Document>>, RefreshError> {
        self.send(RefreshNow { name, wait, full: false }).await
    }

    /// `POST .../refresh?full=true`: like [`Self::refresh_now`] without waiting, but a full
    /// re-read (joining a fetch in flight makes the next fetch the full one).
    ///
    /// # Errors
    /// [`RefreshError`].
    pub async fn refresh_full(&self, name: CacheName) -> Result<(), RefreshError> {
        self.send(RefreshNow { name, wait: false, full: true }).await.map(|_| ())
    }

    async fn send(&self, msg: RefreshNow) -> Result<Option<Arc<Document>>, RefreshError> {
        match self.addr.send(msg).await {
            Ok(result) => result,
            Err(e) => Err(RefreshError::Failed(format!("refresher unavailable: {e}"))),
        }
    }

    /// See [`StravaPush`]: an acknowledged webhook event, processed after the answer;
    /// `false` (dropped) while [`super::MAX_QUEUED_EVENTS`] wait to be taken in.
    pub fn strava_push(&self, event: PushEvent) -> bool {
        let Some(ticket) = self.intake.enter() else { return false };
        self.addr.do_send(StravaPush { event, _ticket: ticket });
        true
    }

    /// See [`Quiesce`]: graceful shutdown.
    pub fn quiesce(&self) {
        self.addr.do_send(Quiesce);
    }

    /// See [`RefreshAll`]; how many refreshes started.
    pub async fn refresh_all(&self) -> usize {
        self.addr.send(RefreshAll).await.unwrap_or(0)
    }

    /// See [`Reconfigure`].
    pub fn reconfigure(&self, caches: Vec<RefreshCache>, policy: super::RefreshPolicy) {
        self.addr.do_send(Reconfigure { caches, policy });
    }

    /// See [`Observed`].
    pub fn observed(&self, doc: &Document) {
        self.addr.do_send(Observed {
            name: doc.name.clone(),
            last_fetch: doc.last_fetch,
            last_rich_fetch: doc.last_rich_fetch,
        });
    }

    /// Whether the actor's mailbox is open.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
