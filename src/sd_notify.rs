//! systemd's notification protocol: `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`,
//! `EXTEND_TIMEOUT_USEC=` and the watchdog's `WATCHDOG=1`, sent through the
//! `sd-notify` crate to `$NOTIFY_SOCKET`. Without that variable every call is a no-op,
//! so the daemon behaves the same outside systemd.
//!
//! # The watchdog
//!
//! When `$WATCHDOG_USEC` is set (systemd's `WatchdogSec=`), [`Notifier::health_loop`]
//! sends `WATCHDOG=1` every half of it, but only while the actors pass the supervisor's
//! health probe ([`tiercache_actors::supervisor::health::probe`], which says how each
//! actor is judged); the same verdict makes `/healthz` answer 503, with or without
//! systemd. The file tier must answer within half the ping interval.
//!
//! Postgres being down does not stop the pings: a restart cannot fix it, and the
//! daemon keeps serving from its files meanwhile (`tiercache_postgres_up` alerts).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::liveness::Liveness;
use sd_notify::NotifyState;
use tiercache_actors::supervisor::health::{self, Mailboxes};
use tiercache_actors::tiers::Tiers;

/// How often the actors are checked when systemd asks for no watchdog pings.
pub(crate) const HEALTH_PERIOD: Duration = Duration::from_secs(2);

/// How often `STATUS=` is brought up to date with the queue between health checks.
pub(crate) const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// Sends notifications when systemd (or a test) listens on `$NOTIFY_SOCKET`.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// `$NOTIFY_SOCKET` was set at start.
    enabled: bool,
    /// `$WATCHDOG_USEC` (for this process), when the watchdog is on.
    watchdog: Option<Duration>,
    /// Set by [`Notifier::stopping`]: the health loop keeps pinging through the drain
    /// but no longer overwrites the shutdown's `STATUS=`.
    stopping: AtomicBool,
    /// Configured caches, for `STATUS=` (a reload may change it).
    caches: AtomicUsize,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (with `$WATCHDOG_PID`, when set,
    /// naming this process).
    pub(crate) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let watchdog = if enabled { sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) } else { None };
        Self { enabled, watchdog, stopping: AtomicBool::new(false), caches: AtomicUsize::new(0) }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }

    /// Startup is done (or a reload finished): `READY=1` with the status line of
    /// [`summary`] for `caches` configured caches.
    pub(crate) fn ready(&self, tiers: &Tiers, caches: usize) {
        self.caches.store(caches, Ordering::Relaxed);
        self.send(&[NotifyState::Ready, NotifyState::Status(&summary(tiers, caches))]);
    }

    /// A one-line status for `systemctl status`.
    pub(crate) fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// SIGHUP received: `RELOADING=1` with `MONOTONIC_USEC` (what `Type=notify-reload`
    /// needs); [`Notifier::ready`] follows once the reload is done or rejected.
    pub(crate) fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now, NotifyState::Status("reloading the configuration")]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the monotonic clock for RELOADING=1");
                self.send(&[NotifyState::Reloading]);
            }
        }
    }

    /// Graceful shutdown begins: `STOPPING=1`.
    pub(crate) fn stopping(&self, status: &str) {
        self.stopping.store(true, Ordering::Relaxed);
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// The drain is making progress: ask systemd for `more` before its stop timeout
    /// kills the process (`EXTEND_TIMEOUT_USEC=`).
    pub(crate) fn extend_timeout(&self, more: Duration, status: &str) {
        let usec = u32::try_from(more.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec), NotifyState::Status(status)]);
    }

    /// One `WATCHDOG=1`.
    fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// How often the health loop judges: every half watchdog period, or every
    /// [`HEALTH_PERIOD`] without a watchdog (for `/healthz`).
    pub(crate) fn health_period(&self) -> Duration {
        self.watchdog.map_or(HEALTH_PERIOD, |w| w / 2)
    }

    /// Runs until the process ends: every [`Notifier::health_period`] checks the
    /// actors and records the verdict in `liveness` (`/healthz`); under systemd also
    /// sends `WATCHDOG=1` when they all answer. `STATUS=` follows the verdict and the
    /// queue: it is looked at every [`STATUS_PERIOD`] (a load of the queue's snapshot,
    /// no message), so `systemctl status` shows a growing queue long before the next
    /// health tick (15 s with `WatchdogSec=30s`).
    pub(crate) async fn health_loop(self: Arc<Self>, tiers: Tiers, mailboxes: Mailboxes, liveness: Arc<Liveness>) {
        let period = liveness.period();
        let answer_within = period / 2;
        // READY=1 carried the first status.
        let mut last_status = summary(&tiers, self.caches.load(Ordering::Relaxed));
        let mut problem: Option<String> = None;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status_ticks = tokio::time::interval(STATUS_PERIOD.min(period));
        status_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => problem = self.judge(&tiers, &mailboxes, &liveness, answer_within, problem.is_none()).await,
                _ = status_ticks.tick(), if self.enabled => {}
            }
            if !self.enabled {
                continue;
            }
            let status = match &problem {
                Some(p) => format!("unhealthy: {p}"),
                None => summary(&tiers, self.caches.load(Ordering::Relaxed)),
            };
            if status != last_status && !self.stopping.load(Ordering::Relaxed) {
                self.status(&status);
                last_status = status;
            }
        }
    }

    /// One health check: records the verdict, pings the watchdog when healthy, and logs
    /// the change when health is lost or back.
    async fn judge(
        &self,
        tiers: &Tiers,
        mailboxes: &Mailboxes,
        liveness: &Liveness,
        answer_within: Duration,
        was_healthy: bool,
    ) -> Option<String> {
        let verdict = health::probe(tiers.on_disk(), mailboxes, answer_within).await;
        liveness.record(&verdict);
        let problem = verdict.err().map(|why| why.to_string());
        if problem.is_none() && self.watchdog.is_some() {
            self.ping();
        }
        match (&problem, was_healthy) {
            (Some(p), true) => tracing::error!(
                alert = true,
                problem = %p,
                "health check failed; watchdog pings withheld and /healthz answers 503 (systemd restarts the service if this lasts)"
            ),
            (None, false) => tracing::info!("health check passes again"),
            _ => {}
        }
        problem
    }
}

/// The one-line status: `ready: 2 caches, queue 0` (the queue only with Postgres).
pub(crate) fn summary(tiers: &Tiers, caches: usize) -> String {
    let plural = if caches == 1 { "" } else { "s" };
    match tiers.pending_saves() {
        Some(pending) => format!("ready: {caches} cache{plural}, queue {pending}"),
        None => format!("ready: {caches} cache{plural}, postgres off"),
    }
}
