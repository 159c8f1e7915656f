//! Following the other instances of the project: every instance reads the
//! project's row heads (names, versions, checksums and `last_fetch`, a few hundred
//! bytes, through the store's pool) every `postgres.heads_poll_interval`, and at once
//! when a hint arrives. A hint is a NOTIFY on the project's channel, which each instance
//! sends after its own write has committed (never inside it, see `store::writes`); this
//! task LISTENs for them on a dedicated connection. With the heads it brings local
//! copies in line (`apply`): a newer row is adopted, an audited delete dropped, and a
//! check the leading instance recorded (an HTTP 304) moves the local `last_fetch`.
//!
//! Notifications only make it faster: a lost one, a full notification queue, a LISTEN
//! that fails, or a transaction pooler where LISTEN cannot work at all, costs at most
//! one poll interval, never correctness. The LISTEN session reconnects by itself with
//! backoff, and logs the cause once per outage. The payload of a notification is never
//! trusted (any role may NOTIFY on any channel): whatever it says, the heads are read.

mod apply;

use crate::metrics::Metrics;
use crate::retry_queue::backoff::{Backoff, BackoffPolicy};
use crate::retry_queue::RetryQueueHandle;
use crate::save_flow::SaveFlow;
use crate::store::classify::with_causes;
use crate::store::{connect_target, driver_config, listen, ConnectConfig, StoreHandle};
use crate::supervisor::{guard_async, spawn_guarded, ActorId, FailureReporter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, Notification};

/// What the listener reads and updates.
#[derive(Clone)]
pub struct ListenerPeers {
    /// Reads the row heads and newer rows.
    pub store: StoreHandle,
    /// Knows what is still ours to send (never overwritten by another instance's write).
    pub queue: RetryQueueHandle,
    /// The runtime's one save flow: adopts newer rows into the file tier and memory,
    /// drops copies deleted elsewhere, follows the leader's checks, and tells the
    /// refresher and the queue.
    pub saver: SaveFlow,
    /// Becomes true once the daemon's startup sync is over: the first reconciliation
    /// waits for it rather than fetch the rows the sync is fetching.
    pub startup_synced: tokio::sync::watch::Receiver<bool>,
}

/// How the listener follows the others.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// How to connect (the LISTEN session).
    pub connect: ConnectConfig,
    /// `project`.
    pub project: String,
    /// `postgres.heads_poll_interval`; `None`: only hints (notifications) are followed.
    pub poll_every: Option<Duration>,
}

/// How a listening session ended.
enum Ended {
    /// The connection dropped, or LISTEN failed: reconnect.
    Lost(String),
    /// No connection could be made: try again.
    CannotConnect(String),
    /// The project has no row yet, so there is no channel to listen on: look again.
    NotRegistered(String),
}

/// Name in logs and metrics (`tiercache_actor_restarts_total{actor="listener"}`).
pub const ACTOR: &str = crate::supervisor::ActorId::Listener.label();

/// Starts following in the background; returns at once. A panic inside a session or a
/// reconciliation is reported to the supervisor like an actor's (counted, limited) and
/// the work starts again, so following the others never stops silently.
pub fn spawn(peers: ListenerPeers, config: FollowConfig, reporter: FailureReporter, metrics: Arc<Metrics>) {
    let hints = Arc::new(Notify::new());
    let every = config.poll_every.map_or_else(|| "never".to_owned(), |d| humantime::format_duration(d).to_string());
    if config.connect.options.statement_cache {
        spawn_listen(hints.clone(), config.clone(), reporter.clone(), metrics);
    } else {
        tracing::warn!(
            poll_every = %every,
            "postgres.statement_cache = false means a transaction pooler: LISTEN cannot work there, so other \
             instances' writes are seen at the next read of the row heads (postgres.heads_poll_interval); use \
             the session pooler (port 5432) or a direct connection for invalidation within a second"
        );
    }
    spawn_follow(peers, hints, config.poll_every, reporter);
}

/// Reads the heads after every hint and every `poll_every`.
fn spawn_follow(peers: ListenerPeers, hints: Arc<Notify>, poll_every: Option<Duration>, reporter: FailureReporter) {
    spawn_guarded(ActorId::Listener, reporter.clone(), async move {
        // Hints that arrive meanwhile leave a permit: one reconciliation follows.
        let _ = peers.startup_synced.clone().wait_for(|done| *done).await;
        let mut follower = apply::Follower::default();
        let mut failing = false;
        loop {
            match guard_async(ACTOR, reporter.clone(), follower.follow(&peers)).await {
                Ok(Ok(())) => failing = false,
                // An outage has its own lines (the retry queue's): here only the first
                // failure of another kind is worth a WARN.
                Ok(Err(e)) if failing || e.is_outage() => {
                    tracing::debug!(error = %e, "could not read the project's row heads");
                    failing = true;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not read the project's row heads; trying again");
                    failing = true;
                }
                Err(_panicked) => {} // reported; the loop goes on
            }
            match poll_every {
                Some(every) => {
                    tokio::select! {
                        () = hints.notified() => {}
                        () = tokio::time::sleep(every) => {}
                    }
                }
                None => hints.notified().await,
            }
        }
    });
}

/// Waits between attempts to reconnect the LISTEN session. Not a configuration key.
const RECONNECT_BACKOFF: BackoffPolicy = BackoffPolicy {
    initial_interval: Duration::from_millis(200),
    max_interval: Duration::from_secs(30),
    multiplier: 2.0,
};

/// The LISTEN session, reconnected with backoff for as long as the daemon runs.
fn spawn_listen(hints: Arc<Notify>, config: FollowConfig, reporter: FailureReporter, metrics: Arc<Metrics>) {
    spawn_guarded(ActorId::Listener, reporter.clone(), async move {
        let policy = RECONNECT_BACKOFF;
        let mut backoff = Backoff::new(&policy);
        // One WARN per outage and kind of failure (lost, then cannot reconnect, each
        // with its cause): retries that fail the same way are logged at debug.
        let mut warned: Option<std::mem::Discriminant<Ended>> = None;
        loop {
            let ended = guard_async(ACTOR, reporter.clone(), session(&hints, &config, &metrics))
                .await
                .unwrap_or_else(|panicked| Ended::Lost(panicked.to_string()));
            // A session that got to LISTEN was healthy: a failure after it is news, and
            // the backoff starts again.
            if metrics.postgres_listening.get() == 1 {
                warned = None;
                backoff = Backoff::new(&policy);
            }
            metrics.postgres_listening.set(0);
            let wait = backoff.next_wait();
            let retry_in_ms = wait.as_millis() as u64;
            let quiet = warned == Some(std::mem::discriminant(&ended));
            if !matches!(ended, Ended::NotRegistered(_)) {
                warned = Some(std::mem::discriminant(&ended));
            }
            match ended {
                Ended::Lost(why) if quiet => {
                    tracing::debug!(error = %why, retry_in_ms, "LISTEN connection lost; reconnecting");
                }
                Ended::Lost(why) => {
                    tracing::warn!(error = %why, retry_in_ms, "LISTEN connection lost; reconnecting");
                }
                Ended::CannotConnect(why) if quiet => {
                    tracing::debug!(error = %why, retry_in_ms, "cannot connect for LISTEN; retrying");
                }
                Ended::CannotConnect(why) => {
                    tracing::warn!(error = %why, retry_in_ms, "cannot connect for LISTEN; retrying");
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

/// One LISTEN session: connects, LISTENs, and turns every notification into a hint
/// until the connection ends. Says why it ended.
async fn session(hints: &Notify, config: &FollowConfig, metrics: &Metrics) -> Ended {
    let (mut driver_config, tls) = match driver_config(&config.connect) {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    // Named, so an operator can tell it apart in pg_stat_activity.
    driver_config.application_name("tiercache-listen");
    let (client, mut connection) = match driver_config.connect(tls).await {
        Ok(c) => c,
        Err(e) => {
            return Ended::CannotConnect(format!(
                "cannot connect to {}: {}",
                connect_target(&config.connect),
                with_causes(&e)
            ))
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Notification>();
    // The driver ends with the connection and says why. A connection's driver is the
    // documented exception to the guarded forms: it must be polled on a task of its
    // own, holds none of our state, and its end (or panic) ends the session, which the
    // loop above restarts.
    #[allow(clippy::disallowed_methods)]
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return "the session ended".to_owned();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return with_causes(&e),
                None => return "the server closed the connection".to_owned(),
            }
        }
    });
    let ended = listen_for_hints(hints, &client, &mut rx, &config.project, metrics).await;
    let ended = match ended {
        // The notifications stopped: the driver knows why.
        None => match tokio::time::timeout(Duration::from_secs(1), driver).await {
            Ok(Ok(why)) => Ended::Lost(why),
            _ => Ended::Lost("connection closed".into()),
        },
        Some(ended) => {
            driver.abort();
            ended
        }
    };
    ended
}

/// LISTENs on the project's channel and passes every notification on as a hint; `None`
/// when the notifications stop (the connection ended).
async fn listen_for_hints(
    hints: &Notify,
    client: &tokio_postgres::Client,
    rx: &mut mpsc::UnboundedReceiver<Notification>,
    project: &str,
    metrics: &Metrics,
) -> Option<Ended> {
    let lost = |e: &tokio_postgres::Error| Some(Ended::Lost(with_causes(e)));
    let id = match listen::project_id(client, project).await {
        Ok(Some(id)) => id,
        Ok(None) => return Some(Ended::NotRegistered(format!("project {project:?} is not registered yet"))),
        Err(e) => return lost(&e),
    };
    let channel = listen::channel(id);
    if let Err(e) = listen::listen(client, &channel).await {
        return lost(&e);
    }
    metrics.postgres_listening.set(1);
    // A probe through our own channel shows whether notifications reach this session.
    // Whatever it finds, the session stays: the heads poll covers what LISTEN misses.
    let probe = format!("{{\"probe\":{}}}", std::process::id());
    match listen::notify(client, &channel, &probe).await {
        Err(e) => tracing::warn!(
            error = %with_causes(&e),
            "LISTEN is up but a probe notification could not be sent; other instances' writes are seen at \
             the next read of the row heads"
        ),
        Ok(()) => match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(_) => tracing::warn!(
                "LISTEN is up but the probe notification did not arrive within 2 s; other instances' writes are \
                 seen at the next read of the row heads"
            ),
        },
    }
    tracing::info!(channel = %channel, "listening for other instances' writes");
    // Whatever was missed while not listening: read the heads once.
    hints.notify_one();
    while rx.recv().await.is_some() {
        hints.notify_one();
    }
    None
}
