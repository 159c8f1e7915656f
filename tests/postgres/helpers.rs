//! Shared pieces of the Postgres tests: a throwaway cluster with `schema.sql` applied,
//! the daemon's configuration for it, reading rows back with psql, and waiting.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tiercache_testkit::pg::quote_literal;
use tiercache_testkit::{Daemon, DaemonOptions, PgCluster, PgOptions};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tiercache");

/// The database the tests use in each cluster.
pub const DB: &str = "app";

/// How long a save may take to reach a running Postgres.
pub const ARRIVAL: Duration = Duration::from_secs(15);

/// `schema.sql` at the top of the repository.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.sql")
}

/// A cluster with database `app` and the schema applied, as the documentation says
/// (`psql -f schema.sql` as `postgres`).
pub fn cluster() -> PgCluster {
    cluster_with(PgOptions::new())
}

/// [`cluster`] with options (TLS, TCP...).
pub fn cluster_with(opts: PgOptions) -> PgCluster {
    let pg = PgCluster::start_with(opts);
    pg.create_database(DB).expect("create database app");
    pg.psql_file(DB, schema_path()).expect("apply schema.sql");
    pg
}

/// Makes a project role and registers its project exactly as docs/database.md tells an
/// operator to (the SQL block under "### Plain PostgreSQL", run by psql as `postgres`),
/// with `role`, `project` and `password` in place of the recipe's own names.
pub fn role_by_the_docs(pg: &PgCluster, role: &str, project: &str, password: &str) {
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/database.md"))
        .expect("read docs/database.md");
    let recipe = docs
        .split("### Plain PostgreSQL")
        .nth(1)
        .and_then(|section| section.split("```sql\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/database.md has the plain PostgreSQL recipe");
    assert!(recipe.contains("CONNECTION LIMIT"), "the recipe sets a connection limit:\n{recipe}");
    let sql = recipe
        .replace("tiercache_strava", role)
        .replace("strava-site", project)
        .replace("choose-a-long-random-password", password);
    pg.psql(DB, &sql).unwrap_or_else(|e| panic!("the recipe of docs/database.md failed: {e}\n{sql}"));
}

/// The daemon's configuration: Postgres on, caches declared by name, retries fast.
#[derive(Debug, Clone)]
pub struct Conf {
    url: String,
    top: String,
    postgres: String,
    retry: String,
    tables: String,
    caches: Vec<String>,
}

impl Conf {
    /// Postgres at `url`, no caches yet.
    pub fn new(url: impl Into<String>) -> Self {
        Conf {
            url: url.into(),
            top: String::new(),
            postgres: String::new(),
            retry: "initial_interval = \"100ms\"\nmax_interval = \"1s\"\n".into(),
            tables: String::new(),
            caches: Vec::new(),
        }
    }

    /// Declares caches (`[[caches]] name = ...`, no source, no schedule needed).
    pub fn caches(mut self, names: &[&str]) -> Self {
        self.caches.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Top-level keys (`project = "a"`).
    pub fn top(mut self, lines: &str) -> Self {
        self.top.push_str(lines);
        self.top.push('\n');
        self
    }

    /// More lines of `[postgres]`.
    pub fn postgres(mut self, lines: &str) -> Self {
        self.postgres.push_str(lines);
        self.postgres.push('\n');
        self
    }

    /// Replaces the lines of `[retry]` (default: 100 ms to 1 s).
    pub fn retry(mut self, lines: &str) -> Self {
        self.retry = format!("{lines}\n");
        self
    }

    /// Further tables (`[shutdown]`...).
    pub fn tables(mut self, text: &str) -> Self {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        // A connect timeout short enough for the tests, unless they set their own.
        let connect_timeout = if self.postgres.contains("connect_timeout") { "" } else { "connect_timeout = \"3s\"\n" };
        let mut s = format!(
            "{top}\n[log]\nformat = \"json\"\n\n[postgres]\nenabled = true\nurl = {url}\n{connect_timeout}{pg}\n[retry]\n{retry}\n{tables}\n",
            top = self.top,
            url = toml_str(&self.url),
            pg = self.postgres,
            retry = self.retry,
            tables = self.tables,
        );
        for c in &self.caches {
            s.push_str(&format!("[[caches]]\nname = {}\n", toml_str(c)));
        }
        s
    }

    /// Daemon options for this configuration.
    pub fn options(&self) -> DaemonOptions {
        DaemonOptions::new(self.text())
    }

    /// Starts a daemon on it and waits until it is ready.
    pub fn start(&self) -> Daemon {
        Daemon::start(Path::new(BIN), self.options())
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `cache_storage` row, read as `postgres` (who bypasses row-level security).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub project: String,
    pub version: u64,
    pub checksum: String,
    pub data: Value,
}

/// The row of `cache` in project `project`, if any (panics when psql fails).
pub fn row_of(pg: &PgCluster, project: &str, cache: &str) -> Option<Row> {
    try_row_of(pg, project, cache).unwrap_or_else(|e| panic!("reading the row of {cache}: {e}"))
}

/// [`row_of`] in the default project.
pub fn row(pg: &PgCluster, cache: &str) -> Option<Row> {
    row_of(pg, "default", cache)
}

/// [`row_of`], with psql's error instead of a panic.
pub fn try_row_of(pg: &PgCluster, project: &str, cache: &str) -> Result<Option<Row>, String> {
    let out = pg
        .psql(
            DB,
            &format!(
                "SELECT p.project_name, c.version, c.checksum, c.data::text FROM cache_storage c \
                 JOIN projects p ON p.id = c.project_id \
                 WHERE p.project_name = {} AND c.cache_type = {}",
                quote_literal(project),
                quote_literal(cache)
            ),
        )
        .map_err(|e| e.to_string())?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    let mut parts = out.splitn(4, '|');
    let (p, v, c, d) = (parts.next(), parts.next(), parts.next(), parts.next());
    let (Some(p), Some(v), Some(c), Some(d)) = (p, v, c, d) else {
        return Err(format!("unexpected psql output {out:?}"));
    };
    Ok(Some(Row {
        project: p.to_owned(),
        version: v.parse().map_err(|e| format!("version {v:?}: {e}"))?,
        checksum: c.to_owned(),
        data: serde_json::from_str(d).map_err(|e| format!("data {d:?}: {e}"))?,
    }))
}

pub use tiercache_testkit::daemon::message;
pub use tiercache_testkit::rng::Rng;
pub use tiercache_testkit::wait::{seen, wait_for};

/// `tiercache_postgres_writes_total{result="error"}`: writes to Postgres that failed
/// and will be tried again (0 before the first).
pub fn failed_writes(d: &Daemon) -> f64 {
    d.metric("tiercache_postgres_writes_total{result=\"error\"}").unwrap_or(0.0)
}

/// Waits until the row of `cache` holds `version` (exactly) with `data`, and returns it.
#[track_caller]
pub fn wait_for_row(pg: &PgCluster, project: &str, cache: &str, version: u64, data: &Value) -> Row {
    let mut last = None;
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let r = row_of(pg, project, cache);
        if let Some(r) = &r {
            if r.version == version && &r.data == data {
                return r.clone();
            }
            assert!(r.version <= version, "{project}/{cache}: the row went past version {version}: {r:?}");
        }
        last = r.or(last);
        assert!(
            Instant::now() < deadline,
            "{project}/{cache}: version {version} with {data} did not reach Postgres within {ARRIVAL:?}; last row seen: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PUT of a JSON document that must be acknowledged; returns (version, checksum).
#[track_caller]
pub fn put_ok(d: &Daemon, cache: &str, body: &Value) -> (u64, String) {
    let r = d.put_json(cache, &body.to_string());
    assert_eq!(r.status, 200, "PUT {cache}: {r:?}");
    let j = r.json();
    let version = j["version"].as_u64().unwrap_or_else(|| panic!("no version in {j}"));
    let checksum = j["checksum"].as_str().unwrap_or_else(|| panic!("no checksum in {j}")).to_owned();
    (version, checksum)
}

/// GET of a cache that must answer 200; returns (version from the ETag, tier, body).
#[track_caller]
pub fn get_ok(d: &Daemon, cache: &str) -> (u64, String, Value) {
    let r = d.get_cache(cache);
    assert_eq!(r.status, 200, "GET {cache}: {r:?}\nstdout:\n{}", d.stdout());
    let version = r.etag_version().unwrap_or_else(|| panic!("no ETag version: {r:?}"));
    let tier = r.header("x-cache-tier").unwrap_or_default().to_owned();
    (version, tier, r.json())
}

/// `retry_queue.depth` of `GET /v1/caches`.
pub fn queue_depth(d: &Daemon) -> u64 {
    let r = d.get("/v1/caches", &[]);
    assert_eq!(r.status, 200, "/v1/caches: {r:?}");
    let j = r.json();
    j["retry_queue"]["depth"].as_u64().unwrap_or_else(|| panic!("no retry_queue.depth in {j}"))
}

/// Waits for `retry_queue.depth` to reach 0.
#[track_caller]
pub fn wait_queue_empty(d: &Daemon, timeout: Duration) {
    let mut last = 0;
    let deadline = Instant::now() + timeout;
    loop {
        last = d
            .try_request("GET", "/v1/caches", None, &[])
            .ok()
            .and_then(|r| r.json()["retry_queue"]["depth"].as_u64())
            .unwrap_or(last);
        if last == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "retry queue still holds {last} caches after {timeout:?}; stdout:\n{}",
            d.stdout()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a session of database `app` waits for a lock (a write stuck behind
/// [`Session::lock_cache_storage`], say).
#[track_caller]
pub fn wait_for_lock_wait(pg: &PgCluster) {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}' AND wait_event_type = 'Lock'");
    wait_for("a session waiting for a lock", Duration::from_secs(10), || {
        let waiting = pg.psql(DB, &sql).map_or_else(|e| e.to_string(), |n| n.trim().to_owned());
        let done = waiting.parse::<u32>().is_ok_and(|n| n > 0);
        seen(waiting, done)
    });
}

/// A psql session kept open by the test (stdin piped), for holding locks.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Session {
    /// Opens psql as `postgres` on `app` through the cluster's socket.
    pub fn open(pg: &PgCluster) -> Session {
        Session::open_as(pg, "postgres")
    }

    /// Opens psql as `user` on `app` through the cluster's socket.
    pub fn open_as(pg: &PgCluster, user: &str) -> Session {
        let mut cmd = Command::new(pg.bin_dir().join("psql"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("-h")
            .arg(pg.socket_dir())
            .arg("-p")
            .arg(pg.port().to_string())
            .args(["-U", user, "-d", DB, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn psql");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("psql stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Session { child, stdin, lines: rx }
    }

    /// Sends SQL and waits for a line `marker` that the SQL must print (e.g. with
    /// `SELECT 'marker';` at its end).
    pub fn run_until(&mut self, sql: &str, marker: &str, timeout: Duration) {
        let stdin = self.stdin.as_mut().expect("session closed");
        stdin
            .write_all(sql.as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush())
            .expect("write to psql");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim() == marker => return,
                Ok(_) => continue,
                Err(e) => panic!("psql did not print {marker:?} within {timeout:?}: {e}"),
            }
        }
    }

    /// Holds `LOCK TABLE cache_storage IN ACCESS EXCLUSIVE MODE` in an open transaction.
    pub fn lock_cache_storage(pg: &PgCluster) -> Session {
        let mut s = Session::open(pg);
        s.run_until(
            "BEGIN; LOCK TABLE cache_storage IN ACCESS EXCLUSIVE MODE; SELECT 'locked';",
            "locked",
            Duration::from_secs(10),
        );
        s
    }

    /// Ends the transaction (ROLLBACK) and closes the session.
    pub fn release(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"ROLLBACK;\n\\q\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}
