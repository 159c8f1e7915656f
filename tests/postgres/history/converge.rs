//! Convergence after the run: both instances, both `data_dir`s and the Postgres row
//! hold the same version and checksum for every cache (or all agree it is gone),
//! within [`BOUND`] of the last operation.

use super::setup::CACHES;
use crate::helpers::try_row_of;
use serde_json::Value;
use std::time::{Duration, Instant};
use tiercache_testkit::{Daemon, PgCluster};

/// How long the tiers may take to agree once the workload stopped.
pub const BOUND: Duration = Duration::from_secs(45);

/// What one place holds for a cache: (version, first 16 hex digits of the checksum),
/// `None` when it holds nothing.
pub type Head = Option<(u64, String)>;

/// The heads of one cache in every place, named.
#[derive(Debug, Clone, PartialEq)]
pub struct Heads(pub Vec<(String, Head)>);

impl Heads {
    fn agree(&self) -> bool {
        self.0.windows(2).all(|w| w[0].1 == w[1].1)
    }
}

/// The heads of `cache` now.
pub fn heads(pg: &PgCluster, daemons: &[Daemon], cache: &str) -> Heads {
    let mut out = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        let r = d.try_request("GET", &format!("/v1/caches/{cache}"), None, &[]);
        let served = match r {
            Ok(r) if r.status == 200 => r.header("etag").and_then(super::client_etag),
            Ok(r) if r.status == 404 || r.status == 503 => None,
            Ok(r) => Some((0, format!("status {}", r.status))),
            Err(e) => Some((0, format!("no answer: {e}"))),
        };
        out.push((format!("instance {i} GET"), served));
        out.push((format!("instance {i} file"), file_head(&d.cache_file(cache))));
    }
    let row = match try_row_of(pg, "default", cache) {
        Ok(row) => row.map(|r| (r.version, hex16(&r.checksum))),
        Err(e) => Some((0, format!("psql failed: {e}"))),
    };
    out.push(("Postgres row".to_owned(), row));
    Heads(out)
}

fn file_head(path: &std::path::Path) -> Head {
    let text = std::fs::read(path).ok()?;
    let env: Value = serde_json::from_slice(&text).ok()?;
    Some((env["version"].as_u64()?, hex16(env["checksum"].as_str()?)))
}

fn hex16(checksum: &str) -> String {
    checksum.trim_start_matches("sha256:").chars().take(16).collect()
}

/// Waits until every cache's heads agree; `Err` lists the caches that did not, with
/// what each place held last.
pub fn wait(pg: &PgCluster, daemons: &[Daemon]) -> Result<Duration, Vec<String>> {
    let started = Instant::now();
    loop {
        let all: Vec<(&str, Heads)> = CACHES.iter().map(|c| (*c, heads(pg, daemons, c))).collect();
        if all.iter().all(|(_, h)| h.agree()) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > BOUND {
            return Err(all
                .into_iter()
                .filter(|(_, h)| !h.agree())
                .map(|(c, h)| format!("{c} did not converge within {BOUND:?}: {:?}", h.0))
                .collect());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
