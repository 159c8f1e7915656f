//! No acknowledged write is lost.
//!
//! Registers (`counter`, `uniq`, `feed`): a document served after a PUT P was
//! acknowledged, on the instance that acknowledged it (and the final state, on any
//! instance), must be P's own or come from a write that may follow P: a PUT that was
//! not yet acknowledged when P was sent, a feed answer asked for after P was sent, or
//! anything after a DELETE that was not finished before P was sent. Served instead: a
//! PUT acknowledged before P was even sent, or a refresh whose upstream fetch began
//! before it, means P was overwritten by a write built on what came before it. When
//! P's document is served again later (the write flapped back, e.g. rebased to a new
//! version) the violation is reported apart from the writes that stay lost.
//!
//! Strava: the activity a PUT P added must be in every document served after P was
//! acknowledged (same rule on instances), unless something that may remove it came
//! first: a full list read begun after P was sent (upstream does not have it), or
//! another PUT without it that was not acknowledged before P was sent. Merges
//! (incremental, rich detail, webhook-driven) must keep it.

use super::facts::{activity_ids, added_activity, Facts, Writer};
use super::record::Op;

/// Whether `writer`'s document may legitimately replace the acknowledged PUT `p`.
fn may_follow(writer: Writer<'_>, p: &Op) -> bool {
    match writer {
        Writer::Put(q) => q.id == p.id || q.settled_end() > p.start,
        Writer::Fetch(_, at) => at > p.start,
        Writer::Unknown => true, // reported by the reads check
    }
}

/// Lost writes of the register caches: on the PUT's instance while the run goes on
/// (`lost` when the PUT's document is never served again, `flapped` when it comes back
/// later, for example rebased to a new version), and at the end (`lost`).
pub fn registers(f: &Facts<'_>, lost: &mut Vec<String>, flapped: &mut Vec<String>) {
    for cache in ["counter", "uniq", "feed"] {
        let deletes = f.deletes(cache);
        let erased = |p: &Op, until: f64| deletes.iter().any(|d| d.settled_end() > p.start && d.start < until);
        let mut acked: Vec<&Op> = f.on(cache).filter(|op| op.acked_put()).collect();
        acked.sort_by(|a, b| a.end.total_cmp(&b.end));
        for inst in 0..2 {
            // The latest-sent PUT acknowledged on this instance before each read.
            let mine: Vec<&&Op> = acked.iter().filter(|p| p.inst == inst).collect();
            let (mut next, mut latest): (usize, Option<&Op>) = (0, None);
            for read in f.reads(cache, inst) {
                while next < mine.len() && mine[next].end < read.start {
                    if latest.is_none_or(|l| mine[next].start > l.start) {
                        latest = Some(mine[next]);
                    }
                    next += 1;
                }
                let (Some(p), Some(doc)) = (latest, read.served()) else { continue };
                let w = f.writer(cache, doc);
                if !may_follow(w, p) && !erased(p, read.end) {
                    let back = f.on(cache).any(|r| r.start > read.end && r.served() == p.put_body());
                    let out = if back { &mut *flapped } else { &mut *lost };
                    out.push(format!(
                        "{cache}: acknowledged {}\n    then instance {inst} served {}\n    in {}",
                        p.line(),
                        w.describe(),
                        read.line()
                    ));
                }
            }
        }
        // The end state against the latest-sent acknowledged PUT of any instance.
        let Some(p) = acked.iter().max_by(|a, b| a.start.total_cmp(&b.start)) else { continue };
        let fin = f.final_read(cache);
        match fin.and_then(|r| r.served().map(|doc| (r, doc))) {
            Some((r, doc)) => {
                let w = f.writer(cache, doc);
                if !may_follow(w, p) && !erased(p, r.end) {
                    lost.push(format!(
                        "{cache}: acknowledged {}\n    but the run ended with {}\n    ({})",
                        p.line(),
                        w.describe(),
                        r.line()
                    ));
                }
            }
            None if !erased(p, f64::INFINITY) => {
                lost.push(format!("{cache}: acknowledged {}\n    but the run ended without the cache", p.line()))
            }
            None => {}
        }
    }
}

/// Activities added by acknowledged Strava PUTs that a merge dropped.
pub fn strava(f: &Facts<'_>, out: &mut Vec<String>) {
    let mut puts: Vec<&Op> = f.on("strava").filter(|op| op.put_body().is_some() && op.maybe_applied()).collect();
    puts.sort_by(|a, b| a.start.total_cmp(&b.start));
    let unanswered: Vec<&Op> = puts.iter().copied().filter(|w| !w.acked_put()).collect();
    let reads = [f.reads("strava", 0), f.reads("strava", 1)];
    let fin = f.final_read("strava");
    for p in puts.iter().filter(|p| p.acked_put()) {
        let Some(id) = added_activity(p) else { continue };
        // The first moment something may have removed it: a full read begun after P was
        // sent, or another PUT without it that was not acknowledged before P was sent
        // (acknowledged PUTs of interest started at most a request's length before P).
        let full = f.full_reads.iter().copied().find(|at| *at > p.start).unwrap_or(f64::INFINITY);
        let from = puts.partition_point(|w| w.start < p.start - 60.0);
        let until = puts.partition_point(|w| w.start < full);
        let other = puts[from..until]
            .iter()
            .chain(unanswered.iter())
            .filter(|w| w.id != p.id && w.settled_end() > p.start)
            .filter(|w| w.put_body().is_some_and(|b| !activity_ids(b).contains(&id)))
            .map(|w| w.start)
            .fold(f64::INFINITY, f64::min);
        let removable = full.min(other);
        let mine = &reads[p.inst];
        let first = mine.partition_point(|r| r.start <= p.end);
        let later = mine[first..].iter().copied().take_while(|r| r.start < removable).filter(|r| r.end < removable);
        let mut checked = later.chain(fin.filter(|r| r.end < removable && r.served().is_some()));
        if let Some(r) = checked.find(|r| r.served().is_some_and(|doc| !activity_ids(doc).contains(&id))) {
            out.push(format!(
                "strava: acknowledged {}\n    added activity {id}, missing from {}\n    (no full read or other PUT that may remove it came first; next full read at {full:.3}s)",
                p.line(),
                r.line()
            ));
        }
    }
}
