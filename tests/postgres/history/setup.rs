//! The system under test: one throwaway Postgres, two instances of one project on it
//! (each with its own `data_dir`), and the caches of the run.

use super::upstream::Upstream;
use crate::helpers::{toml_str, Conf, DB};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use tiercache_testkit::{Daemon, PgCluster};

/// The caches, by what writes them:
/// - `counter`: read-modify-write increments with `If-Match` only;
/// - `uniq`: unconditional PUTs of unique content, and DELETEs;
/// - `feed`: an `http` source refreshed every 2 s and on demand, unconditional PUTs,
///   DELETEs;
/// - `strava`: a Strava source (incremental every 3 s, rich every 9 s with slow detail
///   calls, full every 20 s, on demand, webhook-driven) and `If-Match` PUTs that add an
///   activity of their own.
pub const CACHES: [&str; 4] = ["counter", "uniq", "feed", "strava"];

/// The verify token of the webhook route.
pub const VERIFY: &str = "history-verify-token";

/// The configuration both instances share; `busy` false pushes every schedule an hour
/// away (reloaded with SIGHUP after the run, so that the tiers can be compared at rest).
pub fn conf(pg: &PgCluster, up: &Upstream, busy: bool) -> Conf {
    let base = up.server.base_url();
    let [feed, strava, rich, full] = if busy { ["2s", "3s", "9s", "20s"] } else { ["1h"; 4] };
    let tables = format!(
        "[refresh]\nfetch_timeout = \"20s\"\n\n[webhooks]\nstrava_verify_token = \"{VERIFY}\"\n\n\
         [[caches]]\nname = \"feed\"\nrefresh_every = \"{feed}\"\n[caches.source]\nkind = \"http\"\nurl = {url}\n\n\
         [[caches]]\nname = \"strava\"\nrefresh_every = \"{strava}\"\nrich_refresh_every = \"{rich}\"\n[caches.source]\n\
         kind = \"strava\"\nclient_id = \"12345\"\nclient_secret = \"client-secret\"\nrefresh_token = \"configured\"\n\
         base_url = {base}\nper_page = 200\nfull_refresh_every = \"{full}\"\n",
        url = toml_str(&format!("{base}/feed")),
        base = toml_str(&base),
    );
    Conf::new(pg.url(DB, "postgres")).caches(&["counter", "uniq"]).tables(&tables)
}

/// The instances' API ports, which the clients read before every request (a restarted
/// instance may have moved to another port).
#[derive(Clone, Default)]
pub struct Ports(Arc<[AtomicU16; 2]>);

impl Ports {
    /// `http://127.0.0.1:PORT` of instance `i` + `path`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0[i].load(Ordering::SeqCst))
    }

    /// Records where instance `i` listens now.
    pub fn set(&self, i: usize, d: &Daemon) {
        self.0[i].store(d.port(), Ordering::SeqCst);
    }
}
