//! The chaos test: a steady read and save load while the test injects, at random, actor
//! panics (probabilistic failpoints in every actor), `kill -9` with a restart, Postgres
//! stop/start and upstream failures. At the end: no acknowledged save lost, Postgres
//! converged, every read answered (or 503 with Retry-After), and restarts counted in the
//! metrics.
//!
//! Bounded for CI (`TIERCACHE_CHAOS_SECS`, default 25 s); a longer soak is the same test
//! with a larger value.

use crate::helpers::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CACHES: [&str; 3] = ["a", "b", "c"];

/// Every actor fails now and then; the handles retry once, so most requests still pass.
const FAILPOINTS: &str = "memory::get=1%panic;file::read=2%panic;file::write=2%panic;store::read=3%panic;\
                          store::write=3%panic;refresher::fetch=10%panic;retry::drain=3%panic";

#[derive(Default)]
struct Ledger {
    /// Per cache: acknowledged version → body.
    acked: HashMap<String, Vec<(u64, String)>>,
    /// Saves not acknowledged, by status (0: no answer, the process was down).
    refused: HashMap<u16, usize>,
    reads: HashMap<u16, usize>,
    unanswered: usize,
    bad_503: usize,
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build()
}

#[cfg(feature = "failpoints")]
#[test]
fn the_daemon_survives_chaos_without_losing_an_acknowledged_save() {
    let secs: u64 = std::env::var("TIERCACHE_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    let mut rng = Rng::from_env_or_clock();
    let mut pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let flaky =
        "if [ $(( $(od -An -N1 -tu1 /dev/urandom) % 3 )) -eq 0 ]; then exit 1; fi; echo '{\"t\": '$(date +%s%N)'}'";
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&CACHES).tables(&format!(
        "[supervisor]\nmax_restarts = 1000\nrestart_window = \"60s\"\n[shutdown]\ntimeout = \"5s\"\n\
         [[caches]]\nname = \"upstream\"\nrefresh_every = \"1s\"\n[caches.source]\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\n",
        toml_str(flaky)
    ));
    let mut daemon =
        tiercache_testkit::Daemon::start(std::path::Path::new(BIN), conf.options().env("FAILPOINTS", FAILPOINTS));
    let base = daemon.url("");
    let _ = dir;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let (ledger, stop, base) = (ledger.clone(), stop.clone(), base.clone());
        std::thread::spawn(move || {
            let agent = agent();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let cache = CACHES[(n % 3) as usize];
                let body = format!("{{\"n\":{n}}}");
                let res = agent
                    .put(&format!("{base}/v1/caches/{cache}"))
                    .set("Content-Type", "application/json")
                    .send_string(&body);
                match res {
                    Ok(r) => {
                        let version: u64 = r.into_json::<serde_json::Value>().unwrap()["version"].as_u64().unwrap();
                        ledger.lock().unwrap().acked.entry(cache.to_owned()).or_default().push((version, body));
                    }
                    Err(ureq::Error::Status(code, _)) => *ledger.lock().unwrap().refused.entry(code).or_default() += 1,
                    Err(_) => *ledger.lock().unwrap().refused.entry(0).or_default() += 1,
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let reader = {
        let (ledger, stop, base) = (ledger.clone(), stop.clone(), base.clone());
        std::thread::spawn(move || {
            let agent = agent();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let cache = ["a", "b", "c", "upstream"][i % 4];
                let status = match agent.get(&format!("{base}/v1/caches/{cache}")).call() {
                    Ok(r) => Some((r.status(), true)),
                    Err(ureq::Error::Status(code, r)) => Some((code, r.header("Retry-After").is_some())),
                    Err(_) => None, // the process is down between kill -9 and restart
                };
                let mut l = ledger.lock().unwrap();
                match status {
                    Some((code, retry_after)) => {
                        *l.reads.entry(code).or_default() += 1;
                        if code == 503 && !retry_after {
                            l.bad_503 += 1;
                        }
                    }
                    None => l.unanswered += 1,
                }
                drop(l);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };

    let (mut kills, mut outages) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(1500 + rng.next() % 1500));
        match rng.next() % 3 {
            0 => {
                daemon.kill9();
                daemon.start_again();
                kills += 1;
            }
            1 => {
                pg.stop();
                std::thread::sleep(Duration::from_millis(500 + rng.next() % 1500));
                pg.start_again();
                outages += 1;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    reader.join().unwrap();

    // Convergence: Postgres up, the queue empties, every cache at its newest version.
    wait_queue_empty(&daemon, Duration::from_secs(60));
    let ledger = ledger.lock().unwrap();
    let restarts: f64 = ["memory", "file", "store", "retry", "refresher"]
        .iter()
        .filter_map(|a| daemon.metric(&format!("tiercache_actor_restarts_total{{actor=\"{a}\"}}")))
        .sum();
    let acked_counts: Vec<usize> = CACHES.iter().map(|c| ledger.acked.get(*c).map_or(0, Vec::len)).collect();
    eprintln!(
        "chaos: {secs} s, {kills} kill -9, {outages} Postgres outages, {restarts} actor restarts (this run), reads {:?}, \
         {} unanswered while down, saves acknowledged {acked_counts:?}, not acknowledged {:?}",
        ledger.reads, ledger.unanswered, ledger.refused
    );
    // Saves went on through the chaos: every cache has acknowledged saves to check.
    for (cache, n) in CACHES.iter().zip(&acked_counts) {
        assert!(*n >= 20, "{cache}: only {n} saves acknowledged; not acknowledged: {:?}", ledger.refused);
    }
    for cache in CACHES {
        let acked = &ledger.acked[cache];
        let (last_version, last_body) = acked.iter().max_by_key(|(v, _)| *v).expect("acknowledged saves");
        let last_n = serde_json::from_str::<serde_json::Value>(last_body).unwrap()["n"].as_u64();
        let (served_version, _, served) = get_ok(&daemon, cache);
        assert!(served_version >= *last_version, "{cache}: served v{served_version} < acknowledged v{last_version}");
        // A newer version than the last acknowledged one is a save whose answer the
        // kill cut off: it was sent after that one.
        assert!(served["n"].as_u64() >= last_n, "{cache}: serves {served}, older than the acknowledged {last_body}");
        if let Some((_, body)) = acked.iter().find(|(v, _)| *v == served_version) {
            assert_eq!(&served, &serde_json::from_str::<serde_json::Value>(body).unwrap(), "{cache} v{served_version}");
        }
        let row = wait_for("Postgres converged", Duration::from_secs(30), || {
            let r = row(&pg, cache);
            let done = r.as_ref().is_some_and(|r| r.version == served_version);
            seen(r, done)
        })
        .expect("a row");
        assert_eq!(row.data, served, "{cache}: Postgres holds what is served");
    }
    assert_eq!(ledger.bad_503, 0, "every 503 carries Retry-After");
    let bad: usize = ledger.reads.iter().filter(|(c, _)| **c != 200 && **c != 503).map(|(_, n)| n).sum();
    assert_eq!(bad, 0, "reads are answered 200 or 503: {:?}", ledger.reads);
    assert!(ledger.reads.get(&200).copied().unwrap_or(0) > 100, "reads were served: {:?}", ledger.reads);
    assert!(daemon.metrics().contains("tiercache_actor_restarts_total"), "restarts are metrics");
}
