//! `kill -9` at random moments of a storm of saves, with Postgres going up and down,
//! round after round: after every restart no acknowledged version is missing from the
//! files, and at the end Postgres holds the newest version of every cache.

use crate::helpers::{cluster, get_ok, row, seen, wait_for, wait_queue_empty, Conf, Rng, ARRIVAL, DB};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tiercache_testkit::daemon::Signal;
use tiercache_testkit::Daemon;

const CACHES: [&str; 4] = ["k0", "k1", "k2", "k3"];
const ROUNDS: u32 = 20;

/// What was acknowledged for one cache: the last version and the documents by version.
#[derive(Default)]
struct Acked {
    last: u64,
    docs: HashMap<u64, Value>,
}

/// Saves in a loop until `stop`; returns what was acknowledged (a save cut by the kill
/// is not acknowledged).
fn storm(d: &Daemon, stop: &AtomicBool, round: u32, seed: u64) -> Vec<(&'static str, u64, Value)> {
    let mut rng = Rng(seed | 1);
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = CACHES[(rng.next() % CACHES.len() as u64) as usize];
        let doc = json!({"round": round, "i": i, "pad": "p".repeat((rng.next() % 2000) as usize)});
        i += 1;
        match d.try_request(
            "PUT",
            &format!("/v1/caches/{name}"),
            Some(doc.to_string().as_bytes()),
            &[("Content-Type", "application/json")],
        ) {
            Ok(r) if r.status == 200 => acked.push((name, r.json()["version"].as_u64().expect("version"), doc)),
            Ok(r) if r.status == 503 => {} // shutting down or not ready: not acknowledged
            Ok(r) => panic!("round {round}: PUT {name}: {r:?}"),
            Err(_) => break, // killed
        }
    }
    acked
}

#[track_caller]
fn assert_nothing_lost(d: &Daemon, acked: &HashMap<&str, Acked>, when: &str) {
    for name in CACHES {
        let a = &acked[name];
        if a.last == 0 {
            continue;
        }
        let (version, _, body) = get_ok(d, name);
        assert!(version >= a.last, "{when}: {name} serves version {version}, below the acknowledged {}", a.last);
        if let Some(doc) = a.docs.get(&version) {
            assert_eq!(&body, doc, "{when}: {name} version {version}");
        }
    }
    for path in d.files_in("caches") {
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|e| panic!("{when}: {} is not JSON: {e}", path.display()));
        }
    }
    assert!(d.files_in("corrupt").is_empty(), "{when}: files found corrupt");
}

#[test]
fn kill_9_during_a_save_storm_with_postgres_up_and_down_loses_nothing() {
    let mut rng = Rng::from_env_or_clock();
    let mut pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres"))
        .caches(&CACHES)
        .retry("initial_interval = \"50ms\"\nmax_interval = \"300ms\"")
        .postgres("connect_timeout = \"1s\"")
        .start();
    let mut acked: HashMap<&str, Acked> = CACHES.iter().map(|n| (*n, Acked::default())).collect();
    let mut total = 0;

    for round in 0..ROUNDS {
        if round > 0 {
            d.start_again();
            assert_nothing_lost(&d, &acked, &format!("round {round}, after the restart"));
        }
        let stop = AtomicBool::new(false);
        let run_for = Duration::from_millis(rng.range(50, 600));
        let toggle_pg = rng.next().is_multiple_of(3);
        let seed = rng.next();
        let mut saved = std::thread::scope(|s| {
            let d = &d;
            let stop = &stop;
            // Two clients at once, so saves of one cache also race each other.
            let storms: Vec<_> =
                (0..2u64).map(|t| s.spawn(move || storm(d, stop, round, seed.wrapping_add(t)))).collect();
            if toggle_pg {
                std::thread::sleep(run_for / 2);
                if pg.is_running() {
                    pg.stop();
                } else {
                    pg.start_again();
                }
                std::thread::sleep(run_for / 2);
            } else {
                std::thread::sleep(run_for);
            }
            d.signal(Signal::SIGKILL);
            stop.store(true, Ordering::Relaxed);
            storms.into_iter().flat_map(|t| t.join().expect("storm thread")).collect::<Vec<_>>()
        });
        saved.sort_by_key(|(name, v, _)| (*name, *v));
        assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(128 + 9), "round {round}");
        total += saved.len();
        for (name, v, doc) in saved {
            let a = acked.get_mut(name).unwrap();
            assert!(v > a.last, "round {round}: {name} acknowledged version {v} after {}", a.last);
            a.last = v;
            a.docs.insert(v, doc);
        }
        eprintln!(
            "round {round}: {total} saves acknowledged so far, postgres {}",
            if pg.is_running() { "up" } else { "down" }
        );
    }
    assert!(total >= 100, "only {total} saves acknowledged in {ROUNDS} rounds");

    // Postgres up for good: after a last restart everything converges.
    if !pg.is_running() {
        pg.start_again();
    }
    d.start_again();
    assert_nothing_lost(&d, &acked, "at the end");
    wait_queue_empty(&d, ARRIVAL);
    for name in CACHES {
        let (version, _, body) = get_ok(&d, name);
        let r = wait_for(&format!("{name} at version {version} in Postgres"), ARRIVAL, || {
            let r = row(&pg, name);
            let done = r.as_ref().is_some_and(|r| r.version >= version);
            seen(r, done)
        })
        .expect("a row");
        assert_eq!((r.version, &r.data), (version, &body), "{name}: Postgres holds the newest version");
    }
}
