//! Malformed HTTP requests are the client's failure, not the daemon's. actix-http has no
//! hook for them: its HTTP/1 dispatcher answers 400 (431 for a head that is too large)
//! and logs `stream error: request parse error: ...` at ERROR, one line per bad
//! connection. This layer recognises those records, counts them in
//! `tiercache_http_requests_rejected_total{reason}` and keeps them out of the log: one in
//! a while is logged at DEBUG instead, so no client can write ERROR or WARN lines.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tiercache_actors::metrics::ReasonLabel;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The module of actix-http that logs a connection's error (its records' target).
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// At most one DEBUG line per this interval.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The layer; clones share the counter and the sampler.
#[derive(Clone, Default)]
pub(crate) struct RejectedRequests {
    counter: Arc<OnceLock<Family<ReasonLabel, Counter>>>,
    sampler: Arc<Sampler>,
}

impl RejectedRequests {
    /// Counts into `family` from now on (the log is set up before the metrics exist).
    pub(crate) fn count_into(&self, family: Family<ReasonLabel, Counter>) {
        let _ = self.counter.set(family);
    }
}

impl<S: Subscriber> Layer<S> for RejectedRequests {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != DISPATCHER {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let Some(reason) = reason(&message.0) else {
            // Anything else the dispatcher reports is the daemon's own failure.
            return true;
        };
        if let Some(counter) = self.counter.get() {
            counter.get_or_create(&ReasonLabel { reason }).inc();
        }
        if let Some(skipped) = self.sampler.take() {
            // Dispatched like any event (the global subscriber is re-entrant here: no
            // layer holds a lock while deciding whether an event is enabled).
            tracing::debug!(
                target: "tiercache::http",
                reason,
                error = %message.0,
                not_logged_since = skipped,
                "malformed HTTP request rejected"
            );
        }
        false
    }
}

/// The `reason` label of a dispatcher error caused by the client, `None` for others.
/// The texts are actix-http's `DispatchError` and `ParseError` messages.
fn reason(message: &str) -> Option<&'static str> {
    let cause = message.strip_prefix("stream error: ")?;
    if let Some(parse) = cause.strip_prefix("request parse error: ") {
        const KINDS: &[(&str, &str)] = &[
            ("invalid method", "method"),
            ("URI error", "uri"),
            ("invalid HTTP version", "version"),
            ("invalid Header", "header"),
            ("message head is too large", "too_large"),
            ("message is incomplete", "incomplete"),
            ("UTF-8 error", "utf8"),
        ];
        return Some(KINDS.iter().find(|(text, _)| parse.starts_with(text)).map_or("malformed", |(_, r)| r));
    }
    // Reading the request failed: the client reset or broke the connection.
    cause.starts_with("I/O error: ").then_some("io")
}

/// The `message` field of an event, formatted.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Lets one rejection through per [`SAMPLE_EVERY`] and counts the others.
struct Sampler {
    start: Instant,
    /// Milliseconds from `start` to the last line, plus one; 0 before the first.
    last: AtomicU64,
    skipped: AtomicU64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self { start: Instant::now(), last: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }
}

impl Sampler {
    /// `Some(rejections not logged since the last line)` when this one is to be logged.
    fn take(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= SAMPLE_EVERY.as_millis() as u64;
        if due && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests;
