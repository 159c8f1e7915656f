//! What the checks look things up in: the history indexed by cache, instance and
//! write tag, the fake upstreams' record, and which write a served document came from.

use super::client::PUT_IDS;
use super::record::{Kind, Op, FINAL};
use super::upstream::State;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The write a served document came from.
#[derive(Debug, Clone, Copy)]
pub enum Writer<'a> {
    /// A PUT of the run (whatever its answer).
    Put(&'a Op),
    /// The feed's answer with this number, asked for at this time.
    Fetch(u64, f64),
    /// Nothing the run wrote or the upstream served.
    Unknown,
}

impl Writer<'_> {
    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Writer::Put(op) => format!("the write {}", op.line()),
            Writer::Fetch(n, at) => format!("feed answer {n}, fetched at {at:.3}s"),
            Writer::Unknown => "a document nobody wrote".to_owned(),
        }
    }
}

/// The history, indexed.
pub struct Facts<'a> {
    pub ops: &'a [Op],
    /// PUTs by (cache, tag).
    pub by_tag: HashMap<(&'static str, String), &'a Op>,
    /// Activity id a Strava PUT added → that PUT.
    pub added: HashMap<u64, &'a Op>,
    /// Every id upstream ever had.
    pub upstream_ids: BTreeSet<u64>,
    /// When each full Strava list read began.
    pub full_reads: Vec<f64>,
    /// Feed answer → when it was asked for.
    pub feed: BTreeMap<u64, f64>,
    /// When Postgres was down.
    pub outages: Vec<(f64, f64)>,
}

impl<'a> Facts<'a> {
    pub fn new(ops: &'a [Op], up: &State, outages: Vec<(f64, f64)>) -> Self {
        let mut by_tag = HashMap::new();
        let mut added = HashMap::new();
        for op in ops {
            let Some(body) = op.put_body() else { continue };
            if let Some(tag) = body.get("w").and_then(Value::as_str) {
                by_tag.insert((op.cache, tag.to_owned()), op);
            }
            if let Some(id) = added_activity(op) {
                added.insert(id, op);
            }
        }
        let mut full_reads = up.full_reads.clone();
        full_reads.sort_by(f64::total_cmp);
        Facts { ops, by_tag, added, upstream_ids: up.ever.clone(), full_reads, feed: up.feed.clone(), outages }
    }

    /// The writer of `doc`, served from `cache`.
    pub fn writer(&self, cache: &'static str, doc: &Value) -> Writer<'a> {
        if let Some(tag) = doc.get("w").and_then(Value::as_str) {
            return match self.by_tag.get(&(cache, tag.to_owned())) {
                Some(op) if op.put_body() == Some(doc) => Writer::Put(op),
                _ => Writer::Unknown,
            };
        }
        match (cache, doc.get("feed").and_then(Value::as_u64)) {
            ("feed", Some(n)) if doc.as_object().is_some_and(|o| o.len() == 1) => {
                self.feed.get(&n).map_or(Writer::Unknown, |at| Writer::Fetch(n, *at))
            }
            _ => Writer::Unknown,
        }
    }

    /// The operations on `cache`.
    pub fn on(&self, cache: &'static str) -> impl Iterator<Item = &'a Op> + '_ {
        self.ops.iter().filter(move |op| op.cache == cache)
    }

    /// The reads that served `cache` on instance `inst`, by start time (the final reads
    /// included).
    pub fn reads(&self, cache: &'static str, inst: usize) -> Vec<&'a Op> {
        let mut v: Vec<&Op> = self.on(cache).filter(|op| op.inst == inst && op.served().is_some()).collect();
        v.sort_by(|a, b| a.start.total_cmp(&b.start));
        v
    }

    /// The read after the run on instance 0: the state the run ended with (`None` when
    /// the cache was not there).
    pub fn final_read(&self, cache: &'static str) -> Option<&'a Op> {
        self.on(cache).find(|op| op.client == FINAL && op.inst == 0 && matches!(op.kind, Kind::Get))
    }

    /// The DELETEs of `cache` that may have been applied.
    pub fn deletes(&self, cache: &'static str) -> Vec<&'a Op> {
        self.on(cache).filter(|op| matches!(op.kind, Kind::Delete) && op.maybe_applied()).collect()
    }
}

/// The ids of the activities of a Strava document, whole (objects with an `id`) or as
/// recorded (the ids alone).
pub fn activity_ids(doc: &Value) -> Vec<u64> {
    doc.get("activities")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|a| a.as_u64().or_else(|| a["id"].as_u64())).collect())
        .unwrap_or_default()
}

/// The activity a Strava PUT added (its last one, with an id of the PUTs' range).
pub fn added_activity(op: &Op) -> Option<u64> {
    if op.cache != "strava" {
        return None;
    }
    let last = *activity_ids(op.put_body()?).last()?;
    (last >= PUT_IDS).then_some(last)
}
