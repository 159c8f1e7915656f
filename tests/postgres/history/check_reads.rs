//! What reads may return.
//!
//! Monotonic reads: on one instance, a read never returns a lower version than a read
//! of that instance that had finished before it began, nor the same version with other
//! content. This holds across the instance's `kill -9` and restart too, and is not
//! reset there: an instance serves only what it first made durable in its own file,
//! and its startup keeps the newer of file and row. A DELETE does reset it (versions
//! start again once Postgres has the delete): reads of that cache from the DELETE's
//! start until [`AFTER_DELETE`] after its end (or after the end of a Postgres outage it
//! overlapped) are not checked, and later reads are
//! compared only with each other.
//!
//! Nothing never written: every document served is one a PUT of the run sent (never
//! one refused with a 4xx, such as a 412), one the fake feed answered, or for Strava a
//! document whose activities all existed upstream or came from such a PUT. One ETag
//! always names one document, and one document always has one checksum.

use super::facts::{activity_ids, Facts, Writer};
use super::record::Op;
use std::collections::HashMap;

/// How long after a DELETE reads of its cache are left out of the monotonic check: the
/// other instance may still serve the old version until it hears of the delete.
pub const AFTER_DELETE: f64 = 5.0;

/// Monotonic reads per instance.
pub fn monotonic(f: &Facts<'_>, out: &mut Vec<String>) {
    for cache in super::setup::CACHES {
        let windows: Vec<(f64, f64)> = f
            .deletes(cache)
            .iter()
            .map(|d| {
                let end = if d.status.is_some() { d.end } else { d.end + 5.0 };
                // Learned by the other instance only once Postgres is back.
                let end = f.outages.iter().filter(|(a, b)| *a < end && *b > d.start).fold(end, |e, (_, b)| e.max(*b));
                (d.start, end + AFTER_DELETE)
            })
            .collect();
        for inst in 0..2 {
            let reads = f.reads(cache, inst);
            let mut done: Vec<&Op> = Vec::new(); // started, not yet finished before the current read
            let mut floor: Option<&Op> = None;
            let mut last_start = f64::NEG_INFINITY;
            for r in reads {
                if windows.iter().any(|(a, b)| r.end > *a && r.start < *b) {
                    continue;
                }
                if windows.iter().any(|(a, _)| *a > last_start && *a <= r.start) {
                    floor = None;
                    done.clear();
                }
                last_start = r.start;
                done.retain(|g| {
                    if g.end < r.start {
                        if floor.is_none_or(|fl| version(g) > version(fl)) {
                            floor = Some(g);
                        }
                        false
                    } else {
                        true
                    }
                });
                if let Some(fl) = floor {
                    let (v, c) = r.etag.clone().unwrap_or_default();
                    let (fv, fc) = fl.etag.clone().unwrap_or_default();
                    if v < fv || (v == fv && c != fc) {
                        out.push(format!(
                            "{cache}: instance {inst} went back from version {fv}-{fc} to {v}-{c}:\n    {}\n    then {}",
                            fl.line(),
                            r.line()
                        ));
                    }
                }
                done.push(r);
            }
        }
    }
}

fn version(op: &Op) -> u64 {
    op.etag.as_ref().map_or(0, |(v, _)| *v)
}

/// Every served document was written; ETags and checksums name one document each.
pub fn written(f: &Facts<'_>, out: &mut Vec<String>) {
    let mut by_etag: HashMap<(&str, u64, String), &Op> = HashMap::new();
    let mut by_content: HashMap<(&str, String), &Op> = HashMap::new();
    for op in f.ops {
        let Some(doc) = op.served() else { continue };
        let Some((v, c)) = op.etag.clone() else {
            out.push(format!("{}: a read without an ETag: {}", op.cache, op.line()));
            continue;
        };
        if let Some(first) = by_etag.get(&(op.cache, v, c.clone())) {
            if first.served() != Some(doc) {
                out.push(format!(
                    "{}: ETag {v}-{c} named two documents:\n    {}\n    {}",
                    op.cache,
                    first.line(),
                    op.line()
                ));
            }
        } else {
            by_etag.insert((op.cache, v, c.clone()), op);
        }
        let key = (op.cache, doc.to_string());
        match by_content.get(&key) {
            Some(first) if first.etag.as_ref().map(|e| &e.1) != Some(&c) => out.push(format!(
                "{}: one document with two checksums:\n    {}\n    {}",
                op.cache,
                first.line(),
                op.line()
            )),
            Some(_) => {}
            None => {
                by_content.insert(key, op);
            }
        }
        if op.cache == "strava" {
            for id in activity_ids(doc) {
                let ok = f.upstream_ids.contains(&id) || f.added.get(&id).is_some_and(|p| p.maybe_applied());
                if !ok {
                    let by = f.added.get(&id).map_or("nobody".to_owned(), |p| p.line());
                    out.push(format!(
                        "strava: activity {id} was never written (added by {by}), served in {}",
                        op.line()
                    ));
                }
            }
            continue;
        }
        match f.writer(op.cache, doc) {
            Writer::Put(p) if !p.maybe_applied() => {
                out.push(format!("{}: served the refused write {}\n    in {}", op.cache, p.line(), op.line()))
            }
            Writer::Unknown => out.push(format!("{}: served a document nobody wrote: {}", op.cache, op.line())),
            _ => {}
        }
    }
}
