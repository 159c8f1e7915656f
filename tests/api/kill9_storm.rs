//! `kill -9` during a storm of PUTs, repeated: no acknowledged version is ever lost, no
//! cache file is ever left unreadable, nothing is ever found corrupt.

use crate::helpers::{spawn_app_with, Options};
use crate::util::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tiercache_testkit::Daemon;

const CACHES: [&str; 3] = ["a", "b", "c"];
const ROUNDS: u32 = 10;

/// What the storm saw acknowledged for one cache.
#[derive(Default)]
struct Acked {
    last: u64,
    bodies: HashMap<u64, String>,
}

/// Every `*.json` in `caches/` parses as JSON (temp files may be partial after a kill).
fn assert_files_parse(app: &Daemon, include_tmp: bool, when: &str) {
    for path in app.files_in("caches") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !include_tmp && !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            panic!("{when}: {name} is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes));
        }
    }
    let corrupt = app.files_in("corrupt");
    assert!(corrupt.is_empty(), "{when}: files moved to corrupt/: {corrupt:?}");
}

/// The served version is at least the last acknowledged one, with the acknowledged body.
fn assert_nothing_lost(app: &Daemon, acked: &HashMap<&str, Acked>, round: u32) {
    for name in CACHES {
        let a = &acked[name];
        let r = app.get_cache(name);
        if a.last == 0 {
            assert!(r.status == 200 || r.status == 503, "round {round}, {name}: {r:?}");
            continue;
        }
        assert_eq!(r.status, 200, "round {round}, {name}: acknowledged data not served: {r:?}");
        let version = r.etag_version().expect("ETag");
        assert!(version >= a.last, "round {round}, {name}: served version {version} < acknowledged {}", a.last);
        if let Some(body) = a.bodies.get(&version) {
            assert_eq!(&r.body, body, "round {round}, {name}: body of version {version}");
        }
    }
}

#[test]
fn kill_9_during_a_storm_of_puts_loses_nothing() {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill9 storm seed {seed}");
    let mut rng = Rng(seed);
    let mut app = spawn_app_with(Options::new().caches(&CACHES));
    let mut acked: HashMap<&str, Acked> = CACHES.iter().map(|n| (*n, Acked::default())).collect();
    let mut total_acked = 0usize;

    for round in 0..ROUNDS {
        if round > 0 {
            app.start_again();
            assert_files_parse(&app, true, &format!("after restart {round}"));
            assert_nothing_lost(&app, &acked, round);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let storm = {
            let stop = stop.clone();
            let url = app.url("");
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                let mut seen: Vec<(&'static str, u64, String)> = Vec::new();
                let mut i = 0u64;
                'storm: loop {
                    for name in CACHES {
                        let body = format!(r#"{{"n":{i},"round":{round}}}"#);
                        let res = agent
                            .put(&format!("{url}/v1/caches/{name}"))
                            .set("Content-Type", "application/json")
                            .send_string(&body);
                        match res {
                            Ok(r) => {
                                assert_eq!(r.status(), 200);
                                let etag = r.header("etag").expect("ETag").to_owned();
                                seen.push((name, tiercache_testkit::http::parse_etag(&etag).0, body));
                            }
                            Err(ureq::Error::Status(code, r)) => {
                                panic!("PUT {name} answered {code}: {:?}", r.into_string());
                            }
                            // The kill: an unanswered request is not acknowledged.
                            Err(ureq::Error::Transport(t)) => {
                                assert!(stop.load(Ordering::SeqCst), "transport error before the kill: {t}");
                                break 'storm;
                            }
                        }
                        i += 1;
                    }
                }
                seen
            })
        };
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 500));
        stop.store(true, Ordering::SeqCst);
        app.kill9();
        let seen = storm.join().expect("the storm thread failed");
        eprintln!("round {round}: {} saves acknowledged before the kill", seen.len());
        total_acked += seen.len();
        for (name, version, body) in seen {
            let a = acked.get_mut(name).unwrap();
            assert!(version > a.last, "{name}: acknowledged version {version} not above {}", a.last);
            a.last = version;
            if let Some(previous) = a.bodies.insert(version, body.clone()) {
                panic!("{name}: version {version} acknowledged twice ({previous} and {body})");
            }
        }
        assert_files_parse(&app, false, &format!("right after kill {round}"));
    }
    app.start_again();
    assert_files_parse(&app, true, "after the last restart");
    assert_nothing_lost(&app, &acked, ROUNDS);
    app.stop();
    assert!(total_acked >= ROUNDS as usize, "the storm acknowledged only {total_acked} saves");
}
