//! Cross-instance invalidation (SPEC §10): every write to `cache_storage` sends a NOTIFY
//! on the project's channel (a trigger in schema.sql); this task LISTENs on a dedicated
//! connection and, for each notification, reads the project's row versions back through
//! its own connection (the statements are the store's, `store::listen`): it replaces the local copy (file and memory) when another
//! instance wrote a newer version, and drops it when the audit records that another
//! instance deleted the cache. The payload is never trusted (see `apply`).
//!
//! After a lost connection it reconnects, LISTENs again and reconciles versions with one
//! query, so a notification missed in between leaves no stale copy. LISTEN needs a
//! session: behind a transaction pooler it cannot work, and the listener says so once
//! and stays off (copies are then refreshed by the memory TTL and the refresher only).

mod apply;

use crate::files::FileHandle;
use crate::memory::MemoryHandle;
use crate::refresher::RefresherHandle;
use crate::retry_queue::backoff::{Backoff, BackoffPolicy};
use crate::retry_queue::RetryQueueHandle;
use crate::store::{connect_target, driver_config, listen, ConnectConfig, StoreHandle};
use crate::supervisor::{guard_async, FailureReporter};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Notification};

/// What the listener updates.
#[derive(Clone)]
pub struct ListenerPeers {
    /// Reads newer rows.
    pub store: StoreHandle,
    /// Adopts them.
    pub files: FileHandle,
    /// Serves them.
    pub memory: MemoryHandle,
    /// Knows what is still ours to send (never overwritten by another instance's write).
    pub queue: RetryQueueHandle,
    /// Learns the new `last_fetch`.
    pub refresher: Option<RefresherHandle>,
    /// Adopts newer rows into the file tier and memory, and tells the refresher and the
    /// queue.
    pub saver: crate::save_flow::SaveFlow,
    /// Becomes true once the daemon's startup sync is over: the first reconciliation
    /// waits for it rather than fetch the rows the sync is fetching.
    pub startup_synced: tokio::sync::watch::Receiver<bool>,
}

/// How a listening session ended.
enum Ended {
    /// The connection dropped: reconnect.
    Lost(String),
    /// No connection could be made: try again.
    CannotConnect(String),
    /// The project has no row yet, so there is no channel to listen on: look again.
    NotRegistered(String),
    /// Notifications do not arrive on this connection (a transaction pooler).
    Unsupported,
}

/// Name in logs and metrics (`tiercache_actor_restarts_total{actor="listener"}`).
pub const ACTOR: &str = crate::supervisor::ActorId::Listener.label();

/// Starts listening in the background; returns at once. A panic inside a session is
/// reported to the supervisor like an actor's (counted, limited) and the session starts
/// again, so invalidation never stops silently.
pub fn spawn(peers: ListenerPeers, connect: ConnectConfig, project: String, reporter: FailureReporter) {
    if !connect.options.statement_cache {
        tracing::warn!(
            "postgres.statement_cache = false means a transaction pooler: LISTEN/NOTIFY cannot work there, so \
             cross-instance invalidation is off and other instances' writes show up after memory.ttl; \
             use the session pooler (port 5432) or a direct connection for several instances"
        );
        return;
    }
    actix::spawn(async move {
        let mut backoff = Backoff::new(&BackoffPolicy {
            initial_interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(30),
            multiplier: 2.0,
        });
        // One WARN per outage: retries that fail the same way are logged at debug.
        let mut quiet = false;
        loop {
            let ended = guard_async(ACTOR, reporter.clone(), session(&peers, &connect, &project))
                .await
                .unwrap_or_else(|panicked| Ended::Lost(panicked.to_string()));
            let wait = backoff.next_wait();
            let retry_in_ms = wait.as_millis() as u64;
            match ended {
                Ended::Unsupported => {
                    tracing::warn!(
                        "NOTIFY does not reach this connection (a transaction pooler?): cross-instance \
                         invalidation is off; other instances' writes show up after memory.ttl"
                    );
                    return;
                }
                Ended::Lost(why) => {
                    tracing::warn!(error = %why, retry_in_ms, "LISTEN connection lost; reconnecting");
                    quiet = true;
                }
                Ended::CannotConnect(why) if quiet => {
                    tracing::debug!(error = %why, retry_in_ms, "cannot connect for LISTEN; retrying");
                }
                Ended::CannotConnect(why) => {
                    tracing::warn!(error = %why, retry_in_ms, "cannot connect for LISTEN; retrying");
                    quiet = true;
                }
                // Usual for a new project, which startup registers moments later; a
                // project that stays unregistered has its own ERROR line from startup.
                Ended::NotRegistered(why) => tracing::info!(
                    error = %why, retry_in_ms, "waiting for the project to be registered before LISTEN"
                ),
            }
            tokio::time::sleep(wait).await;
        }
    });
}

async fn session(peers: &ListenerPeers, connect: &ConnectConfig, project: &str) -> Ended {
    let lost = |e: &dyn std::fmt::Display| Ended::Lost(e.to_string());
    let (mut config, tls) = match driver_config(connect) {
        Ok(c) => c,
        Err(e) => return lost(&e),
    };
    // Named, so an operator can tell it apart in pg_stat_activity.
    config.application_name("tiercache-listen");
    let (client, mut connection) = match config.connect(tls).await {
        Ok(c) => c,
        Err(e) => return Ended::CannotConnect(format!("cannot connect to {}: {e}", connect_target(connect))),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Notification>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let result = listen_and_apply(peers, &client, &mut rx, project).await;
    driver.abort();
    result
}

async fn listen_and_apply(
    peers: &ListenerPeers,
    client: &tokio_postgres::Client,
    rx: &mut mpsc::UnboundedReceiver<Notification>,
    project: &str,
) -> Ended {
    let lost = |e: &dyn std::fmt::Display| Ended::Lost(e.to_string());
    let id = match listen::project_id(client, project).await {
        Ok(Some(id)) => id,
        Ok(None) => return Ended::NotRegistered(format!("project {project:?} is not registered yet")),
        Err(e) => return lost(&e),
    };
    let channel = listen::channel(id);
    if let Err(e) = listen::listen(client, &channel).await {
        return lost(&e);
    }
    // A probe through our own channel proves notifications reach this session.
    let probe = format!("{{\"probe\":{}}}", std::process::id());
    if let Err(e) = listen::notify(client, &channel, &probe).await {
        return lost(&e);
    }
    match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        Ok(Some(_)) => {}
        Ok(None) => return Ended::Lost("connection closed".into()),
        Err(_) => return Ended::Unsupported,
    }
    tracing::info!(channel = %channel, "listening for other instances' writes");
    // Notifications that arrive meanwhile wait in `rx`; a dropped sender means no sync.
    let _ = peers.startup_synced.clone().wait_for(|done| *done).await;
    apply::reconcile(peers, client, id).await;
    // Each notification is a hint: whatever it says, read the rows back (one query for
    // a burst of them).
    while rx.recv().await.is_some() {
        while rx.try_recv().is_ok() {}
        apply::reconcile(peers, client, id).await;
    }
    Ended::Lost("connection closed".into())
}
