//! The faults of the run, at seeded times: in each minute (or in the whole run when it
//! is shorter) one Postgres restart (the cluster stopped for 3 to 7 s, then started
//! again on the same port) and one `kill -9` of an instance, restarted 1 to 4 s later.

use super::record::Recorder;
use super::setup::Ports;
use std::time::{Duration, Instant};
use tiercache_testkit::rng::Rng;
use tiercache_testkit::{Daemon, PgCluster};

/// One fault: what, and when it began and ended (seconds since the run began).
#[derive(Debug, Clone)]
pub struct Fault {
    pub what: String,
    pub from: f64,
    pub to: f64,
}

impl Fault {
    /// A Postgres outage.
    pub fn is_outage(&self) -> bool {
        self.what.starts_with("Postgres")
    }
}

/// Runs the faults until `until`; returns them for the report and the checks.
pub fn run(
    pg: &mut PgCluster,
    daemons: &mut [Daemon],
    ports: &Ports,
    rec: &Recorder,
    rng: &mut Rng,
    until: Instant,
) -> Vec<Fault> {
    let total = until.saturating_duration_since(Instant::now()).as_secs_f64();
    let cycles = (total / 60.0).floor().max(1.0) as u32;
    let length = total / f64::from(cycles);
    let begin = rec.now();
    let mut log = Vec::new();
    for k in 0..cycles {
        let at = begin + length * f64::from(k);
        sleep_until(rec, at + length * rng.range(20, 35) as f64 / 100.0);
        let down = rng.range(3, 8);
        let from = rec.now();
        pg.stop();
        std::thread::sleep(Duration::from_secs(down));
        pg.start_again();
        log.push(Fault { what: format!("Postgres stopped for {down} s"), from, to: rec.now() });

        sleep_until(rec, at + length * rng.range(55, 70) as f64 / 100.0);
        let victim = rng.range(0, 2) as usize;
        let down = rng.range(1, 5);
        let from = rec.now();
        daemons[victim].kill9();
        std::thread::sleep(Duration::from_secs(down));
        daemons[victim].start_again();
        ports.set(victim, &daemons[victim]);
        log.push(Fault {
            what: format!("instance {victim} killed (-9), restarted {down} s later"),
            from,
            to: rec.now(),
        });
    }
    sleep_until(rec, rec.secs(until));
    log
}

fn sleep_until(rec: &Recorder, at: f64) {
    let left = at - rec.now();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}
