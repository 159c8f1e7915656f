//! A history checker: two instances of one project on one real Postgres, a seeded
//! concurrent workload with faults, every operation recorded, then checked.
//!
//! For `TIERCACHE_HISTORY_SECS` seconds (default 60) four clients, each with its own
//! generator seeded from `TIERCACHE_HISTORY_SEED` (default [`SEED`]), send to either
//! instance: reads of every cache, `If-Match` increments of a counter, `If-Match` PUTs
//! that add an activity to a Strava document, unconditional PUTs of unique content,
//! DELETEs, on-demand refreshes (some full) and Strava webhook events (the fake Strava
//! changes first, its detail calls are slow), while both instances refresh on their own
//! schedules, Postgres is restarted and an instance is killed with `-9` and restarted.
//! Then the schedules are pushed away (SIGHUP), the tiers must agree, and the history is
//! checked (`check_writes`, `check_reads`, `check_ifmatch`, `converge`). With
//! `TIERCACHE_HISTORY_OUT=FILE` the history is written there as JSON.

mod check_ifmatch;
mod check_reads;
mod check_writes;
mod client;
mod converge;
mod facts;
mod faults;
mod record;
mod setup;
mod upstream;

use crate::helpers::cluster;
use client::Client;
use record::{Kind, Recorder, FINAL};
use serde_json::json;
use setup::{Ports, CACHES};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::Signal;
use tiercache_testkit::rng::Rng;
use tiercache_testkit::wait_for;

/// The suite's seed.
pub const SEED: u64 = 24_2024;

/// Concurrent clients.
const CLIENTS: usize = 4;

/// The ETag of an answer's `ETag` header, parsed.
pub fn client_etag(etag: &str) -> Option<(u64, String)> {
    let (v, c) = etag.trim_matches('"').split_once('-')?;
    Some((v.parse().ok()?, c.to_owned()))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn a_history_of_two_instances_keeps_every_acknowledged_write() {
    let secs = env_u64("TIERCACHE_HISTORY_SECS", 60);
    let seed = env_u64("TIERCACHE_HISTORY_SEED", SEED);
    eprintln!("history: {secs} s, seed {seed} (TIERCACHE_HISTORY_SECS={secs} TIERCACHE_HISTORY_SEED={seed} replays the schedule)");
    let rec = Recorder::new(Instant::now());
    let mut pg = cluster();
    let up = Arc::new(upstream::Upstream::start(&rec, 6));
    let conf = setup::conf(&pg, &up, true);
    let mut daemons = [conf.start(), conf.start()];
    let ports = Ports::default();
    for (i, d) in daemons.iter().enumerate() {
        ports.set(i, d);
    }
    let agent = tiercache_testkit::http::agent();
    let init = client::call(
        &agent,
        &ports,
        &rec,
        FINAL,
        0,
        "counter",
        Kind::Put { body: json!({"n": 0, "w": "init"}), if_match: None },
    );
    assert_eq!(init.status, Some(200), "{}", init.line());
    for d in &daemons {
        for cache in ["counter", "strava"] {
            wait_for(&format!("{cache} on every instance"), Duration::from_secs(20), || {
                (d.get_cache(cache).status == 200).then_some(())
            });
        }
    }

    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let c = Client::new(n, seed, ports.clone(), rec.clone(), up.clone());
            std::thread::spawn(move || c.run(until))
        })
        .collect();
    let mut rng = Rng(seed | 1);
    let faults = faults::run(&mut pg, &mut daemons, &ports, &rec, &mut rng, until);
    for t in threads {
        t.join().expect("a client panicked");
    }

    // At rest: no schedule due for an hour, then the tiers must agree.
    let quiet = setup::conf(&pg, &up, false).text();
    for d in daemons.iter_mut() {
        d.set_config(quiet.clone());
        d.signal(Signal::SIGHUP);
    }
    let converged = converge::wait(&pg, &daemons);
    for inst in 0..2 {
        for cache in CACHES {
            client::call(&agent, &ports, &rec, FINAL, inst, cache, Kind::Get);
        }
    }

    let ops = rec.ops();
    let state = up.state();
    let outages = faults.iter().filter(|f| f.is_outage()).map(|f| (f.from, f.to)).collect();
    let facts = facts::Facts::new(&ops, &state, outages);
    let mut checks: Vec<(&str, Vec<String>)> = Vec::new();
    let mut add = |name, f: &dyn Fn(&facts::Facts<'_>, &mut Vec<String>)| {
        let mut v = Vec::new();
        f(&facts, &mut v);
        checks.push((name, v));
    };
    let (mut lost, mut flapped) = (Vec::new(), Vec::new());
    check_writes::registers(&facts, &mut lost, &mut flapped);
    add("lost writes (registers)", &|_, out| out.append(&mut lost.clone()));
    add("acknowledged write replaced by an older one, then back (registers)", &|_, out| {
        out.append(&mut flapped.clone())
    });
    add("lost writes (Strava merges)", &check_writes::strava);
    add("monotonic reads", &check_reads::monotonic);
    add("never written", &check_reads::written);
    add("If-Match linearizable", &check_ifmatch::linearizable);
    checks.push(("convergence", converged.err().unwrap_or_default()));

    let count = |f: fn(&record::Op) -> bool| ops.iter().filter(|op| f(op)).count();
    eprintln!("history: {} operations; {} reads served, {} PUTs acknowledged ({} refused, {} unanswered), {} DELETEs, {} webhook events",
        ops.len(),
        count(|op| op.served().is_some()),
        count(|op| op.acked_put()),
        count(|op| op.put_body().is_some() && matches!(op.status, Some(400..=499))),
        count(|op| op.put_body().is_some() && op.status.is_none()),
        count(|op| matches!(op.kind, Kind::Delete)),
        count(|op| matches!(op.kind, Kind::Webhook { .. })));
    eprintln!(
        "history: upstream: {} full Strava reads, {} incremental, {} detail calls, {} feed answers",
        state.full_reads.len(),
        state.incremental_reads,
        state.details,
        state.feed.len()
    );
    eprintln!("history: {}", check_ifmatch::counter_summary(&facts));
    for f in &faults {
        eprintln!("history: fault {:.3}s..{:.3}s: {}", f.from, f.to, f.what);
    }
    if let Ok(path) = std::env::var("TIERCACHE_HISTORY_OUT") {
        let history = json!({"seed": seed, "secs": secs,
            "faults": faults.iter().map(|f| json!({"what": f.what, "from": f.from, "to": f.to})).collect::<Vec<_>>(),
            "full_reads": state.full_reads, "feed_answers": state.feed,
            "violations": checks.iter().map(|(name, found)| json!({"check": name, "found": found})).collect::<Vec<_>>(),
            "ops": ops.iter().map(record::Op::to_json).collect::<Vec<_>>()});
        std::fs::write(&path, history.to_string()).expect("write the history");
    }
    let mut failed = Vec::new();
    for (name, found) in &checks {
        eprintln!("history: check {name}: {} violations", found.len());
        if !found.is_empty() {
            failed.push(format!(
                "{name}: {} violations, the first ones:\n  {}",
                found.len(),
                found.iter().take(12).cloned().collect::<Vec<_>>().join("\n  ")
            ));
        }
    }
    assert!(failed.is_empty(), "the history (seed {seed}, {secs} s) breaks:\n{}", failed.join("\n"));
}
