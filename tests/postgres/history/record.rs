//! The recorded history: every operation a client, the fault controller or the final
//! read made, with its instance, start and end (seconds since the run began), the
//! request and the answer. A transport error (an instance killed or restarting) leaves
//! the status empty: the operation's outcome is unknown, and the checks treat it as
//! possibly applied at any time after it started.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// What an operation asked.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `GET /v1/caches/NAME`.
    Get,
    /// `PUT /v1/caches/NAME` of `body`, with `If-Match` when `if_match` is set.
    Put { body: Value, if_match: Option<String> },
    /// `DELETE /v1/caches/NAME`.
    Delete,
    /// `POST /v1/caches/NAME/refresh` (`?full=true` when `full`).
    Refresh { full: bool },
    /// A Strava webhook event posted to the instance.
    Webhook { event: Value },
}

/// One operation and its answer.
#[derive(Debug, Clone)]
pub struct Op {
    /// Position in the history.
    pub id: usize,
    /// The client thread (`FINAL` for the reads after the run).
    pub client: usize,
    /// Instance 0 or 1.
    pub inst: usize,
    pub cache: &'static str,
    pub kind: Kind,
    /// Seconds since the run began, when the request was sent.
    pub start: f64,
    /// Seconds since the run began, when the answer (or the transport error) came.
    pub end: f64,
    /// The status, `None` on a transport error.
    pub status: Option<u16>,
    /// The answer's ETag, parsed: (version, checksum prefix).
    pub etag: Option<(u64, String)>,
    /// The answer's body when it is JSON (a GET's document).
    pub body: Option<Value>,
}

/// The client number of the reads made after the run.
pub const FINAL: usize = 999;

impl Op {
    /// The PUT's body, if this is a PUT.
    pub fn put_body(&self) -> Option<&Value> {
        match &self.kind {
            Kind::Put { body, .. } => Some(body),
            _ => None,
        }
    }

    /// A PUT that got 200.
    pub fn acked_put(&self) -> bool {
        matches!(self.kind, Kind::Put { .. }) && self.status == Some(200)
    }

    /// A write that may have been applied: acknowledged, or no answer, or a 5xx that
    /// might have come after the save (a 4xx, 412 included, refused it).
    pub fn maybe_applied(&self) -> bool {
        !matches!(self.status, Some(400..=499))
    }

    /// When the write finished for sure: its end if it was acknowledged, never otherwise
    /// (an unanswered write may land any time later).
    pub fn settled_end(&self) -> f64 {
        if matches!(self.status, Some(200..=299)) {
            self.end
        } else {
            f64::INFINITY
        }
    }

    /// A GET that served a document.
    pub fn served(&self) -> Option<&Value> {
        match self.kind {
            Kind::Get if self.status == Some(200) => self.body.as_ref(),
            _ => None,
        }
    }

    /// One line for failure messages.
    pub fn line(&self) -> String {
        let what = match &self.kind {
            Kind::Get => "GET".to_owned(),
            Kind::Put { body, if_match: Some(m) } => format!("PUT If-Match {m} {}", short(body)),
            Kind::Put { body, if_match: None } => format!("PUT {}", short(body)),
            Kind::Delete => "DELETE".to_owned(),
            Kind::Refresh { full } => format!("POST refresh full={full}"),
            Kind::Webhook { event } => format!("webhook {event}"),
        };
        let status = self.status.map_or("no answer".to_owned(), |s| s.to_string());
        let etag = self.etag.as_ref().map_or(String::new(), |(v, c)| format!(" etag {v}-{c}"));
        let body = match (&self.kind, &self.body) {
            (Kind::Get, Some(b)) => format!(" {}", short(b)),
            _ => String::new(),
        };
        format!(
            "#{} client {} instance {} {} [{:.3}s..{:.3}s] {what} -> {status}{etag}{body}",
            self.id, self.client, self.inst, self.cache, self.start, self.end
        )
    }

    /// The operation as JSON (the history file).
    pub fn to_json(&self) -> Value {
        let kind = match &self.kind {
            Kind::Get => json!({"op": "get"}),
            Kind::Put { body, if_match } => json!({"op": "put", "body": body, "if_match": if_match}),
            Kind::Delete => json!({"op": "delete"}),
            Kind::Refresh { full } => json!({"op": "refresh", "full": full}),
            Kind::Webhook { event } => json!({"op": "webhook", "event": event}),
        };
        json!({
            "id": self.id, "client": self.client, "instance": self.inst, "cache": self.cache,
            "request": kind, "start": self.start, "end": self.end, "status": self.status,
            "etag": self.etag.as_ref().map(|(v, c)| format!("{v}-{c}")), "body": self.body,
        })
    }
}

/// A document shortened for a message: Strava documents by their activity ids (the
/// upstream ones counted, the ones PUTs added listed).
pub fn short(doc: &Value) -> String {
    match doc.get("activities").and_then(Value::as_array) {
        Some(_) => {
            let ids = super::facts::activity_ids(doc);
            let (added, upstream): (Vec<u64>, Vec<u64>) = ids.iter().partition(|id| **id >= super::client::PUT_IDS);
            let added: Vec<String> = added.iter().map(u64::to_string).collect();
            format!(
                "{} upstream activities (newest {:?}), added [{}]",
                upstream.len(),
                upstream.first(),
                added.join(",")
            )
        }
        None => doc.to_string(),
    }
}

/// The shared record, appended to by every thread.
#[derive(Clone)]
pub struct Recorder {
    origin: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    /// Times are measured from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin, ops: Arc::default() }
    }

    /// Seconds since the origin.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// `at` in seconds since the origin.
    pub fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Appends `op`, numbering it.
    pub fn push(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        op.id = ops.len();
        ops.push(op);
    }

    /// Everything so far, in the order recorded.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
