//! One client of the workload: a thread that, until the run's end, picks its next
//! operation from its own seeded generator and records it with its answer. Every
//! document a client writes carries a tag unique in the run (`"w"`, or the name and id
//! of the activity a Strava PUT adds), so the checks can tell which write a served
//! document came from.

use super::record::{Kind, Op, Recorder};
use super::setup::Ports;
use super::upstream::{activity, Upstream, ATHLETE};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_testkit::rng::Rng;

/// Ids of the activities PUTs add start here (upstream ids stay far below).
pub const PUT_IDS: u64 = 1_000_000;

/// At most this many activities added by PUTs stay in the Strava document: a PUT that
/// adds one more drops the oldest.
const MAX_ADDED: usize = 40;

/// A client: its number, its generator, and what it shares with the others.
pub struct Client {
    pub n: usize,
    pub rng: Rng,
    pub ports: Ports,
    pub rec: Recorder,
    pub up: Arc<Upstream>,
    agent: ureq::Agent,
    writes: u64,
}

impl Client {
    pub fn new(n: usize, seed: u64, ports: Ports, rec: Recorder, up: Arc<Upstream>) -> Self {
        let rng = Rng((seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        Self { n, rng, ports, rec, up, agent: tiercache_testkit::http::agent(), writes: 0 }
    }

    /// Runs operations until `until`.
    pub fn run(mut self, until: Instant) {
        while Instant::now() < until {
            self.step();
            std::thread::sleep(Duration::from_millis(self.rng.range(0, 40)));
        }
    }

    fn step(&mut self) {
        let inst = self.rng.range(0, 2) as usize;
        match self.rng.range(0, 1000) {
            // Rare, so that most reads of `uniq` and `feed` stay in the monotonic check.
            0 => {
                let cache = *self.rng.pick(&["uniq", "feed"]);
                self.call(inst, cache, Kind::Delete);
            }
            1..=279 => {
                let cache = *self.rng.pick(&super::setup::CACHES);
                self.call(inst, cache, Kind::Get);
            }
            280..=449 => self.increment(inst),
            450..=569 => self.add_activity(inst),
            570..=689 => {
                let tag = self.tag();
                let pad = "x".repeat(self.rng.range(0, 200) as usize);
                self.call(inst, "uniq", Kind::Put { body: json!({"w": tag, "pad": pad}), if_match: None });
            }
            690..=789 => {
                let tag = self.tag();
                self.call(inst, "feed", Kind::Put { body: json!({"w": tag}), if_match: None });
            }
            790..=889 => {
                let cache = *self.rng.pick(&["feed", "strava"]);
                let full = cache == "strava" && self.rng.range(0, 4) == 0;
                self.call(inst, cache, Kind::Refresh { full });
            }
            _ => self.webhook(inst),
        }
    }

    /// A tag no other write of the run has.
    fn tag(&mut self) -> String {
        self.writes += 1;
        format!("{}.{}", self.n, self.writes)
    }

    /// GET the counter, then PUT it plus one with `If-Match` on the same instance.
    fn increment(&mut self, inst: usize) {
        let read = self.call(inst, "counter", Kind::Get);
        let (Some(doc), Some((v, c))) = (read.served(), &read.etag) else { return };
        let Some(n) = doc["n"].as_u64() else { return };
        let tag = self.tag();
        let if_match = Some(format!("\"{v}-{c}\""));
        self.call(inst, "counter", Kind::Put { body: json!({"n": n + 1, "w": tag}), if_match });
    }

    /// GET the Strava document, then PUT it with one more activity (old enough not to
    /// move the incremental refresh's `after=`) with `If-Match` on the same instance.
    fn add_activity(&mut self, inst: usize) {
        let read = self.call(inst, "strava", Kind::Get);
        let (Some(doc), Some((v, c))) = (read.served(), &read.etag) else { return };
        let mut doc = doc.clone();
        let tag = self.tag();
        let id = PUT_IDS + (self.n as u64) * 100_000 + self.writes;
        let mut added = activity(id, &format!("put {tag}"));
        added["start_date"] = json!("2019-06-01T07:00:00Z");
        let Some(list) = doc.get_mut("activities").and_then(Value::as_array_mut) else { return };
        // The oldest activities PUTs added go once there are too many, so that the
        // document (and the history) stay bounded however long the run: the checks
        // treat this PUT as the one that may remove them.
        let added_before = list.iter().filter(|a| a["id"].as_u64().is_some_and(|id| id >= PUT_IDS)).count();
        let mut surplus = (added_before + 1).saturating_sub(MAX_ADDED);
        list.retain(|a| {
            let old = surplus > 0 && a["id"].as_u64().is_some_and(|id| id >= PUT_IDS);
            surplus -= usize::from(old);
            !old
        });
        list.push(added);
        let if_match = Some(format!("\"{v}-{c}\""));
        self.call(inst, "strava", Kind::Put { body: doc, if_match });
    }

    /// Changes the fake Strava (a new activity, a renamed one or a deleted one) and
    /// posts the event that says so.
    fn webhook(&mut self, inst: usize) {
        let choice = self.rng.range(0, 10);
        let event = {
            let mut s = self.up.state();
            // Between 4 and 25 activities upstream, so that a rich refresh stays under the
            // fetch timeout with its slow detail calls.
            let (id, aspect, updates) = if (choice < 5 || s.activities.len() < 4) && s.activities.len() < 25 {
                let id = s.next_id;
                s.next_id += 1;
                s.ever.insert(id);
                s.activities.insert(0, activity(id, &format!("Run {id}")));
                (id, "create", json!({}))
            } else if choice < 8 || s.activities.len() < 4 {
                let i = self.rng.range(0, s.activities.len() as u64) as usize;
                let name = format!("Renamed {}", self.rng.next() % 1000);
                s.activities[i]["name"] = json!(name);
                (s.activities[i]["id"].as_u64().unwrap_or(0), "update", json!({"title": name}))
            } else {
                let i = self.rng.range(1, s.activities.len() as u64) as usize;
                let gone = s.activities.remove(i);
                (gone["id"].as_u64().unwrap_or(0), "delete", json!({}))
            };
            json!({"object_type": "activity", "object_id": id, "aspect_type": aspect, "owner_id": ATHLETE,
                   "subscription_id": 1, "event_time": chrono::Utc::now().timestamp(), "updates": updates})
        };
        self.call(inst, "strava", Kind::Webhook { event });
    }

    /// Sends one request, records it, and returns the recorded operation.
    pub fn call(&self, inst: usize, cache: &'static str, kind: Kind) -> Op {
        call(&self.agent, &self.ports, &self.rec, self.n, inst, cache, kind)
    }
}

/// Method, URL, body and headers of a request.
type Request<'a> = (&'static str, String, Option<Vec<u8>>, Vec<(&'a str, &'a str)>);

/// Sends the request `kind` on `cache` to instance `inst` and records it.
pub fn call(
    agent: &ureq::Agent,
    ports: &Ports,
    rec: &Recorder,
    client: usize,
    inst: usize,
    cache: &'static str,
    kind: Kind,
) -> Op {
    let json = [("Content-Type", "application/json")];
    let path = format!("/v1/caches/{cache}");
    let (method, url, body, headers): Request<'_> = match &kind {
        Kind::Get => ("GET", ports.url(inst, &path), None, vec![]),
        Kind::Put { body, if_match } => {
            let mut h = json.to_vec();
            if let Some(m) = if_match {
                h.push(("If-Match", m.as_str()));
            }
            ("PUT", ports.url(inst, &path), Some(body.to_string().into_bytes()), h)
        }
        Kind::Delete => ("DELETE", ports.url(inst, &path), None, vec![]),
        Kind::Refresh { full } => {
            let q = if *full { "?full=true" } else { "" };
            ("POST", ports.url(inst, &format!("{path}/refresh{q}")), None, vec![])
        }
        Kind::Webhook { event } => {
            ("POST", ports.url(inst, "/v1/webhooks/strava"), Some(event.to_string().into_bytes()), json.to_vec())
        }
    };
    let start = rec.now();
    let answer = tiercache_testkit::http::try_request(agent, method, &url, body.as_deref(), &headers);
    let end = rec.now();
    let (status, etag, body) = match answer {
        Ok(r) => {
            let etag = r.header("etag").and_then(parse_etag);
            let body = matches!(kind, Kind::Get).then(|| serde_json::from_str(&r.body).ok()).flatten();
            (Some(r.status), etag, body)
        }
        Err(_) => (None, None, None),
    };
    let op = Op { id: 0, client, inst, cache, kind, start, end, status, etag, body };
    rec.push(compact(&op));
    op
}

/// The operation as recorded: Strava documents (read or written) kept as the list of
/// their activity ids (numbers) and a digest of the whole document, so that a long
/// run's history fits in memory; the checks need no more.
fn compact(op: &Op) -> Op {
    if op.cache != "strava" {
        return op.clone();
    }
    let small = |doc: &Value| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&doc.to_string(), &mut h);
        let ids = super::facts::activity_ids(doc);
        json!({"activities": ids, "digest": format!("{:016x}", std::hash::Hasher::finish(&h))})
    };
    let mut op = op.clone();
    op.body = op.body.as_ref().map(small);
    if let Kind::Put { body, .. } = &mut op.kind {
        *body = small(body);
    }
    op
}

/// `"VERSION-C"` → (version, C).
fn parse_etag(etag: &str) -> Option<(u64, String)> {
    let (v, c) = etag.trim_start_matches("W/").trim_matches('"').split_once('-')?;
    Some((v.parse().ok()?, c.to_owned()))
}
