//! Throwaway PostgreSQL clusters and PgBouncers for tests.
//!
//! A [`PgCluster`] is a private server made with the machine's own `initdb` and
//! `postgres` (the highest version under `/usr/lib/postgresql/*/bin`, or the directory
//! named by `TIERCACHE_TEST_PG_BIN`) in a temporary directory. It listens on a Unix socket
//! in that directory only, unless TCP or TLS is asked for, and then on `127.0.0.1` at a
//! free port as well. It never touches the machine's own server on port 5432.
//!
//! Run as root (as the tests and CI are), the server and every tool run as the
//! `postgres` user, because `initdb` and `postgres` refuse to run as root. Run as anybody
//! else, they run as that user.
//!
//! Authentication is `trust` (any role may connect without a password), except on TCP
//! when [`PgOptions::tcp_password_auth`] is set. Roles are cluster-wide: tests that create
//! roles must use a cluster of their own, never [`external_url`].
//!
//! The servers are stopped when their value is dropped, and also (through the parent-death
//! signal) when the test process dies, so a crashed or killed test run leaves no server
//! behind. Dropping a [`PgCluster`] removes its directory.

use crate::port::free_port;
use crate::spawn::{die_with_parent, spawn_long_lived};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that may name an existing database for tests that need no
/// server of their own (see [`external_url`]).
pub const EXTERNAL_URL_VAR: &str = "TIERCACHE_TEST_DATABASE_URL";

/// How long a server gets to become ready, or to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// An error of the harness: a command that failed, with what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error { message: message.into() }
    }

    /// The whole message (for `psql`, its standard error).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::new(e.to_string())
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The URL in `TIERCACHE_TEST_DATABASE_URL`, when set and not empty.
///
/// Tests that only read and write tables may run against it instead of a throwaway
/// cluster. Tests that stop or start the server, create roles or databases, change
/// server settings or need TLS or PgBouncer must use a [`PgCluster`] of their own.
pub fn external_url() -> Option<String> {
    std::env::var(EXTERNAL_URL_VAR).ok().filter(|s| !s.trim().is_empty())
}

/// Options of [`PgCluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    tcp: bool,
    tls: Option<(PathBuf, PathBuf)>,
    tcp_password_auth: bool,
    hostssl_only: bool,
    settings: Vec<(String, String)>,
}

impl PgOptions {
    /// Unix socket only, trust authentication.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also listen on `127.0.0.1` at a free port (the same port number as the socket).
    pub fn tcp(mut self, on: bool) -> Self {
        self.tcp = on;
        self
    }

    /// `ssl=on` with this certificate chain and key (PEM files; they are copied into
    /// the data directory). Implies [`tcp`](Self::tcp): TLS does not apply on Unix
    /// sockets. Clients reach the server as `127.0.0.1`, so for `verify-full` the
    /// certificate needs `127.0.0.1` (an IP SAN) or the client must use `localhost`.
    pub fn tls(mut self, cert_pem: impl AsRef<Path>, key_pem: impl AsRef<Path>) -> Self {
        self.tls = Some((cert_pem.as_ref().to_path_buf(), key_pem.as_ref().to_path_buf()));
        self.tcp = true;
        self
    }

    /// TCP connections must authenticate with a password (`scram-sha-256`); the Unix
    /// socket stays `trust`, so [`PgCluster::psql`] can set passwords. Implies TCP.
    pub fn tcp_password_auth(mut self, on: bool) -> Self {
        self.tcp_password_auth = on;
        if on {
            self.tcp = true;
        }
        self
    }

    /// With TLS: refuse TCP connections that do not use TLS (`hostssl` lines only), so
    /// that `sslmode=disable` fails.
    pub fn hostssl_only(mut self, on: bool) -> Self {
        self.hostssl_only = on;
        self
    }

    /// Any server setting, passed as `-c NAME=VALUE`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }
}

/// A throwaway PostgreSQL cluster. See the [module documentation](self).
pub struct PgCluster {
    bin: PathBuf,
    run_as: RunAs,
    // Declared before `dir` only for clarity; `Drop` stops the server explicitly
    // before the directory goes.
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    opts: PgOptions,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("bin", &self.bin)
            .field("root", &self.root)
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl PgCluster {
    /// Creates and starts a cluster with the default options. Panics with the server's
    /// log when it cannot.
    pub fn start() -> PgCluster {
        Self::start_with(PgOptions::new())
    }

    /// Creates and starts a cluster. Panics with the server's log when it cannot.
    pub fn start_with(opts: PgOptions) -> PgCluster {
        match Self::try_start_with(opts) {
            Ok(c) => c,
            Err(e) => panic!("cannot start a throwaway PostgreSQL cluster: {e}"),
        }
    }

    /// Creates and starts a cluster, or says why not.
    pub fn try_start_with(opts: PgOptions) -> Result<PgCluster> {
        let bin = bin_dir().ok_or_else(|| {
            Error::new(
                "no PostgreSQL binaries: none under /usr/lib/postgresql/*/bin and \
                 TIERCACHE_TEST_PG_BIN unset (apt-get install postgresql)",
            )
        })?;
        let run_as = RunAs::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("tiercache-pg-")
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary directory: {e}")))?;
        let root = dir.path().to_path_buf();
        run_as.chown(&root)?;
        let data = root.join("data");
        let log = root.join("postgres.log");

        let mut cluster = PgCluster { bin, run_as, child: None, dir: Some(dir), root, data, log, port: 0, opts };
        cluster.initdb()?;
        cluster.configure()?;
        // A TCP port may be taken between finding it free and the server binding it:
        // then try another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.port = free_port();
            match cluster.spawn_server() {
                Ok(()) => return Ok(cluster),
                Err(e) if cluster.opts.tcp && attempt < 5 && e.message().contains("could not bind") => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn initdb(&self) -> Result<()> {
        let mut cmd = self.command(self.bin.join("initdb"));
        // initdb removes its half-made data directory on SIGTERM.
        die_with_parent(&mut cmd, libc::SIGTERM);
        let out = cmd
            .arg("-D")
            .arg(&self.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn configure(&self) -> Result<()> {
        let o = &self.opts;
        if o.tcp_password_auth || o.hostssl_only {
            let host = if o.hostssl_only { "hostssl" } else { "host" };
            let method = if o.tcp_password_auth { "scram-sha-256" } else { "trust" };
            let mut hba = String::from("local all all trust\n");
            for net in ["127.0.0.1/32", "::1/128"] {
                hba.push_str(&format!("{host} all all {net} {method}\n"));
            }
            let path = self.data.join("pg_hba.conf");
            fs::write(&path, hba)?;
            self.run_as.chown(&path)?;
        }
        if let Some((cert, key)) = &o.tls {
            for (src, name, mode) in [(cert, "server.crt", 0o644), (key, "server.key", 0o600)] {
                let dst = self.data.join(name);
                fs::copy(src, &dst).map_err(|e| Error::new(format!("cannot copy {} for TLS: {e}", src.display())))?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
                self.run_as.chown(&dst)?;
            }
        }
        Ok(())
    }

    fn spawn_server(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let log_start = log.metadata()?.len();
        let listen = if self.opts.tcp { "127.0.0.1" } else { "" };
        let mut cmd = self.command(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.root)
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=32MB",
                "-c",
                "max_connections=60",
                "-c",
                "logging_collector=off",
            ]);
        if self.opts.tls.is_some() {
            cmd.args(["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]);
        }
        for (k, v) in &self.opts.settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child =
            spawn_long_lived(cmd, libc::SIGQUIT).map_err(|e| Error::new(format!("cannot run postgres: {e}")))?;
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(Error::new(format!(
                    "postgres exited during startup ({status}); its log:\n{}",
                    read_from(&self.log, log_start)
                )));
            }
            if pid_file_ready(&self.data.join("postmaster.pid"), pid) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill_now();
                return Err(Error::new(format!(
                    "postgres not ready after {START_TIMEOUT:?}; its log:\n{}",
                    read_from(&self.log, log_start)
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A URL for `user` on database `db` through the Unix socket:
    /// `postgres://USER@/DB?host=%2Ftmp%2F...&port=PORT`. libpq and tokio-postgres
    /// both accept it.
    pub fn url(&self, db: &str, user: &str) -> String {
        format!(
            "postgres://{}@/{}?host={}&port={}",
            pct(user.as_bytes()),
            pct(db.as_bytes()),
            pct(self.root.as_os_str().as_bytes()),
            self.port
        )
    }

    /// A URL for `user` on database `db` over TCP: `postgres://USER@127.0.0.1:PORT/DB`.
    /// Panics when the cluster was started without TCP (see [`PgOptions::tcp`]).
    pub fn tcp_url(&self, db: &str, user: &str) -> String {
        assert!(
            self.opts.tcp,
            "this PgCluster listens on a Unix socket only: start it with PgOptions::tcp(true) or tls(..)"
        );
        format!("postgres://{}@127.0.0.1:{}/{}", pct(user.as_bytes()), self.port, pct(db.as_bytes()))
    }

    /// The TCP address, when TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.opts.tcp.then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))
    }

    /// The directory holding the Unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The port: part of the socket's name, and the TCP port when TCP is on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log file (kept across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server's whole log so far.
    pub fn log(&self) -> String {
        read_from(&self.log, 0)
    }

    /// The directory of the PostgreSQL binaries in use (`psql`, `pgbench`, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Whether the server is running (not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs `sql` (any number of statements, psql meta-commands allowed) with `psql` as
    /// the superuser `postgres` on `db`, through the Unix socket, with
    /// `-v ON_ERROR_STOP=1 -X -q -A -t`. Returns what psql printed (unaligned, tuples
    /// only; one line per row, columns separated by `|`), without the last newline; or
    /// an error with psql's standard error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        self.psql_as(db, "postgres", sql)
    }

    /// [`psql`](Self::psql) connected as `user` instead of `postgres` (trust
    /// authentication: any role with LOGIN).
    pub fn psql_as(&self, db: &str, user: &str, sql: &str) -> Result<String> {
        let mut cmd = self.command(self.bin.join("psql"));
        cmd.arg("-h").arg(&self.root).arg("-p").arg(self.port.to_string());
        run_psql(cmd, db, user, sql)
    }

    /// Runs the SQL file at `path` (read by the test process, fed to psql on standard
    /// input, so it need not be readable by the `postgres` user) like [`psql`](Self::psql).
    pub fn psql_file(&self, db: &str, path: impl AsRef<Path>) -> Result<String> {
        let path = path.as_ref();
        let sql = fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        self.psql(db, &sql)
    }

    /// `CREATE DATABASE name` (owned by `postgres`).
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name))).map(drop)
    }

    /// Stops the server with a fast shutdown (open sessions are ended, the data is kept)
    /// and waits for it to exit. The cluster can be started again with
    /// [`start_again`](Self::start_again). Does nothing when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGINT);
            if wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("postgres did not stop within {STOP_TIMEOUT:?} of a fast shutdown; log:\n{}", self.log());
            }
        }
    }

    /// Starts a [`stop`](Self::stop)ped cluster again, on the same socket and port, with
    /// the same data. Panics when it is running or cannot start.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: the cluster is running");
        if let Err(e) = self.spawn_server() {
            panic!("cannot start the PostgreSQL cluster again: {e}");
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the postmaster ends its backends and exits.
            signal(&child, libc::SIGQUIT);
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.run_as.command(program, &self.root)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.kill_now();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Debian's `pgbouncer` in transaction pooling mode (as Supabase's pooler on port 6543)
/// in front of a [`PgCluster`], on a free TCP port at `127.0.0.1`, with `trust`
/// authentication. Named prepared statements do not survive across transactions
/// through it (pgbouncer 1.18 does not track them, and `server_round_robin` spreads
/// transactions over the server connections).
///
/// pgbouncer lets in only the users listed in its auth file: the LOGIN roles of the
/// cluster when it started; call [`reload_users`](Self::reload_users) after creating
/// more. Drop it before its cluster (declare it after the cluster).
pub struct PgBouncer {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    psql: PathBuf,
    run_as: RunAs,
    port: u16,
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer").field("root", &self.root).field("port", &self.port).finish()
    }
}

impl PgBouncer {
    /// Starts a pgbouncer for `cluster`; `db` gets its own `[databases]` entry (every
    /// other database name is passed through as well). Panics when it cannot.
    pub fn start(cluster: &PgCluster, db: &str) -> PgBouncer {
        Self::start_with(cluster, db, &[])
    }

    /// [`start`](Self::start) with more `[pgbouncer]` settings, which override the
    /// defaults (`pool_mode = transaction`, `default_pool_size = 4`,
    /// `server_round_robin = 1`, `ignore_startup_parameters = extra_float_digits`, ...).
    pub fn start_with(cluster: &PgCluster, db: &str, settings: &[(&str, &str)]) -> PgBouncer {
        match Self::try_start_with(cluster, db, settings) {
            Ok(b) => b,
            Err(e) => panic!("cannot start pgbouncer: {e}"),
        }
    }

    /// [`start_with`](Self::start_with), or says why not.
    pub fn try_start_with(cluster: &PgCluster, db: &str, settings: &[(&str, &str)]) -> Result<PgBouncer> {
        let program = pgbouncer_binary().ok_or_else(|| {
            Error::new("pgbouncer not found (apt-get install pgbouncer, or set TIERCACHE_TEST_PGBOUNCER)")
        })?;
        let mut bouncer = Self::prepare(cluster)?;
        let server = format!("host={} port={}", cluster.socket_dir().display(), cluster.port());
        // A TCP port may be taken between finding it free and pgbouncer binding it: then
        // try another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            bouncer.port = free_port();
            let ini_path = bouncer.write_ini(&bouncer.ini_text(db, &server, settings))?;
            match bouncer.spawn_server(&program, &ini_path) {
                Ok(()) => return Ok(bouncer),
                Err(e) if attempt < 5 && port_taken(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Its directory (owned by the user the servers run as) and user list, nothing started.
    fn prepare(cluster: &PgCluster) -> Result<PgBouncer> {
        let run_as = cluster.run_as.clone();
        let dir = tempfile::Builder::new().prefix("tiercache-pgbouncer-").tempdir()?;
        let root = dir.path().to_path_buf();
        run_as.chown(&root)?;
        let bouncer = PgBouncer { child: None, dir: Some(dir), root, psql: cluster.bin.join("psql"), run_as, port: 0 };
        bouncer.reload_users(cluster)?;
        Ok(bouncer)
    }

    /// `pgbouncer.ini`: `db` and every other database at `server`, the default settings
    /// with `settings` over them.
    fn ini_text(&self, db: &str, server: &str, settings: &[(&str, &str)]) -> String {
        let mut conf: Vec<(String, String)> = [
            ("listen_addr", "127.0.0.1".to_string()),
            ("listen_port", self.port.to_string()),
            ("unix_socket_dir", String::new()),
            ("auth_type", "trust".into()),
            ("auth_file", self.root.join("userlist.txt").display().to_string()),
            ("admin_users", "postgres".into()),
            ("pool_mode", "transaction".into()),
            ("max_client_conn", "200".into()),
            ("default_pool_size", "4".into()),
            ("server_round_robin", "1".into()),
            ("ignore_startup_parameters", "extra_float_digits".into()),
            ("logfile", self.root.join("pgbouncer.log").display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in settings {
            conf.retain(|(ck, _)| ck != k);
            conf.push((k.to_string(), v.to_string()));
        }
        let mut ini = format!(
            "[databases]\n{} = {server} dbname={}\n* = {server}\n\n[pgbouncer]\n",
            ini_db_name(db),
            ini_db_name(db)
        );
        for (k, v) in &conf {
            ini.push_str(&format!("{k} = {v}\n"));
        }
        ini
    }

    /// Writes `pgbouncer.ini` (owned by the user the server runs as); its path.
    fn write_ini(&self, ini: &str) -> Result<PathBuf> {
        let ini_path = self.root.join("pgbouncer.ini");
        fs::write(&ini_path, ini)?;
        self.run_as.chown(&ini_path)?;
        Ok(ini_path)
    }

    /// Runs `program` on `ini_path` and waits until it accepts TCP connections.
    fn spawn_server(&mut self, program: &Path, ini_path: &Path) -> Result<()> {
        let log_path = self.root.join("pgbouncer.log");
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let mut cmd = self.run_as.command(program, &self.root);
        cmd.arg(ini_path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child =
            spawn_long_lived(cmd, libc::SIGTERM).map_err(|e| Error::new(format!("cannot run pgbouncer: {e}")))?;
        self.child = Some(child);
        self.wait_listening(&log_path, log_start)
    }

    /// Waits until the server accepts TCP connections; `Err` with its log (from
    /// `log_start`) when it exits or is not listening within [`START_TIMEOUT`].
    fn wait_listening(&mut self, log_path: &Path, log_start: u64) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(Error::new(format!(
                    "pgbouncer exited during startup ({status}); its log:\n{}",
                    read_from(log_path, log_start)
                )));
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(Error::new(format!(
                    "pgbouncer not listening after {START_TIMEOUT:?}; its log:\n{}",
                    read_from(log_path, log_start)
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `postgres://USER@127.0.0.1:PORT/DB` through the pooler.
    pub fn url(&self, db: &str, user: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{}", pct(user.as_bytes()), self.port, pct(db.as_bytes()))
    }

    /// The pooler's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// pgbouncer's log so far.
    pub fn log(&self) -> String {
        read_from(&self.root.join("pgbouncer.log"), 0)
    }

    /// Runs `sql` with psql as `user` on `db` through the pooler (see
    /// [`PgCluster::psql`]). The database `pgbouncer` is its admin console (`SHOW POOLS`).
    pub fn psql_as(&self, db: &str, user: &str, sql: &str) -> Result<String> {
        let mut cmd = self.run_as.command(&self.psql, &self.root);
        cmd.args(["-h", "127.0.0.1", "-p"]).arg(self.port.to_string());
        run_psql(cmd, db, user, sql)
    }

    /// Rewrites the auth file from the cluster's current LOGIN roles and, when running,
    /// tells pgbouncer to reload it.
    pub fn reload_users(&self, cluster: &PgCluster) -> Result<()> {
        let roles = cluster.psql("postgres", "SELECT rolname FROM pg_roles WHERE rolcanlogin")?;
        let mut list = String::new();
        for role in roles.lines().filter(|l| !l.is_empty()) {
            list.push_str(&format!("\"{}\" \"\"\n", role.replace('"', "\"\"")));
        }
        let path = self.root.join("userlist.txt");
        fs::write(&path, list)?;
        self.run_as.chown(&path)?;
        if let Some(child) = &self.child {
            signal(child, libc::SIGHUP);
            // pgbouncer reloads asynchronously; give it a moment.
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: immediate shutdown in pgbouncer 1.18 (SIGINT waits for clients).
            signal(&child, libc::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Who the server and its tools run as: the `postgres` user when the tests run as root,
/// else the current user.
#[derive(Debug, Clone)]
struct RunAs {
    ids: Option<(u32, u32)>,
}

impl RunAs {
    fn detect() -> Result<RunAs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(RunAs { ids: None });
        }
        let user = nix::unistd::User::from_name("postgres")
            .map_err(|e| Error::new(format!("cannot look up the postgres user: {e}")))?
            .ok_or_else(|| Error::new("running as root, but there is no `postgres` user to run the server as"))?;
        Ok(RunAs { ids: Some((user.uid.as_raw(), user.gid.as_raw())) })
    }

    fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::new(format!("cannot chown {}: {e}", path.display())))?;
        }
        Ok(())
    }

    fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            // std drops the supplementary groups when root changes the uid.
            cmd.uid(uid).gid(gid);
        }
        // Nothing of the developer's own libpq environment may redirect the tools.
        for (key, _) in std::env::vars_os() {
            if key.as_bytes().starts_with(b"PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOME", cwd).env("LC_ALL", "C").env("PGCLIENTENCODING", "UTF8").current_dir(cwd);
        cmd
    }
}

fn run_psql(mut cmd: Command, db: &str, user: &str, sql: &str) -> Result<String> {
    die_with_parent(&mut cmd, libc::SIGKILL);
    cmd.args(["-U", user, "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::new(format!("cannot run psql: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = sql.to_owned();
    // A separate writer, so that a large script and a large result cannot block each
    // other on full pipes.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().map_err(|e| Error::new(format!("psql: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::new(if stderr.trim().is_empty() {
            format!("psql failed ({})", out.status)
        } else {
            stderr.trim_end().to_string()
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string())
}

/// The highest-versioned `/usr/lib/postgresql/N/bin` holding `postgres` and `initdb`,
/// unless `TIERCACHE_TEST_PG_BIN` names a directory.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TIERCACHE_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(version) = name.split('.').map(str::parse::<u32>).collect::<std::result::Result<Vec<_>, _>>() else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("postgres").is_file()
            && bin.join("initdb").is_file()
            && best.as_ref().is_none_or(|(v, _)| version > *v)
        {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin)
}

fn pgbouncer_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TIERCACHE_TEST_PGBOUNCER").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// Whether `postmaster.pid` belongs to `pid` and says the server accepts connections.
fn pid_file_ready(path: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str()) && lines.get(7).map(|l| l.trim()) == Some("ready")
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; the child is not yet reaped, so
    // its pid cannot have been reused.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// The end of a log from byte `from` (at most its last 8 KiB).
/// Whether pgbouncer failed because its port was taken.
fn port_taken(e: &Error) -> bool {
    e.message().contains("Address already in use") || e.message().contains("could not bind")
}

fn read_from(path: &Path, from: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(8192));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn pct(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// An SQL identifier, double-quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal, single-quoted.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn ini_db_name(db: &str) -> String {
    if db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        db.to_string()
    } else {
        format!("\"{}\"", db.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(pct(b"/tmp/tiercache-pg-Ab.1"), "%2Ftmp%2Ftiercache-pg-Ab.1");
        assert_eq!(pct("ä b".as_bytes()), "%C3%A4%20b");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn free_ports_are_distinct() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        assert_ne!(a, 5432);
    }

    #[test]
    fn start_query_stop_start_again_persists() {
        let mut pg = PgCluster::start();
        assert_eq!(pg.psql("postgres", "select 1").unwrap(), "1");
        pg.create_database("app").unwrap();
        pg.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'kept');").unwrap();
        let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
        assert!(socket.exists(), "no socket at {}", socket.display());

        pg.stop();
        assert!(!pg.is_running());
        assert!(!socket.exists(), "socket left behind after stop");
        assert!(pg.psql("app", "select 1").is_err());

        pg.start_again();
        assert_eq!(pg.psql("app", "SELECT v FROM t WHERE id = 1").unwrap(), "kept");
        let root = pg.socket_dir().to_path_buf();
        drop(pg);
        assert!(!root.exists(), "the cluster's directory was not removed");
    }

    #[test]
    fn unix_only_by_default_and_url_works_with_libpq() {
        let pg = PgCluster::start();
        assert!(pg.tcp_addr().is_none());
        assert_eq!(pg.psql("postgres", "SHOW listen_addresses").unwrap(), "", "must not listen on TCP");
        // psql (libpq) takes the URL as it is given to the daemon.
        let out = pg
            .run_as
            .command(pg.bin.join("psql"), &pg.root)
            .arg(pg.url("postgres", "postgres"))
            .args(["-X", "-A", "-t", "-c", "select current_user"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
    }

    #[test]
    fn psql_reports_errors_and_stops_at_the_first() {
        let pg = PgCluster::start();
        let err = pg.psql("postgres", "CREATE TABLE a (x int); SELECT nope; CREATE TABLE b (x int);").unwrap_err();
        assert!(err.message().contains("column \"nope\" does not exist"), "{err}");
        assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname IN ('a','b')").unwrap(), "1");
    }

    #[test]
    fn tcp_with_password_auth() {
        let pg = PgCluster::start_with(PgOptions::new().tcp_password_auth(true));
        let addr = pg.tcp_addr().expect("tcp on");
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        pg.psql("postgres", "CREATE ROLE app LOGIN PASSWORD 'sesame'").unwrap();
        let run = |password: &str| {
            pg.run_as
                .command(pg.bin.join("psql"), &pg.root)
                .env("PGPASSWORD", password)
                .arg(pg.tcp_url("postgres", "app"))
                .args(["-X", "-A", "-t", "-w", "-c", "select current_user"])
                .output()
                .unwrap()
        };
        let ok = run("sesame");
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "app");
        let bad = run("wrong");
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"));
    }

    #[test]
    fn external_url_reads_its_variable_only() {
        // Only checks the parsing; the variable is normally unset in CI.
        match std::env::var(EXTERNAL_URL_VAR) {
            Ok(v) if !v.trim().is_empty() => assert_eq!(external_url(), Some(v)),
            _ => assert_eq!(external_url(), None),
        }
    }
}

#[cfg(test)]
mod tls_and_pooler_tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI.
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (cert, key)
    }

    #[test]
    fn tls_listens_on_tcp_too() {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(certs.path());
        let pg = PgCluster::start_with(PgOptions::new().tls(&cert, &key).hostssl_only(true));
        assert!(pg.tcp_addr().is_some());
        assert_eq!(pg.psql("postgres", "SHOW ssl").unwrap(), "on");
        let psql = |sslmode: &str| {
            pg.run_as
                .command(pg.bin.join("psql"), &pg.root)
                .arg(format!("{}?sslmode={sslmode}", pg.tcp_url("postgres", "postgres")))
                .args(["-X", "-A", "-t", "-c"])
                .arg("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .output()
                .unwrap()
        };
        let out = psql("require");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
        let out = psql("disable");
        assert!(!out.status.success(), "hostssl_only must refuse plain TCP");
    }

    #[test]
    fn pgbouncer_in_transaction_mode() {
        let pg = PgCluster::start();
        pg.create_database("app").unwrap();
        let bouncer = PgBouncer::start(&pg, "app");
        assert!(bouncer.url("app", "postgres").starts_with("postgres://postgres@127.0.0.1:"));
        assert_eq!(bouncer.psql_as("app", "postgres", "select current_database()").unwrap(), "app");
        let config = bouncer.psql_as("pgbouncer", "postgres", "SHOW CONFIG").unwrap();
        assert!(config.lines().any(|l| l.starts_with("pool_mode|transaction|")), "{config}");
        // A role created later is let in after reload_users.
        pg.psql("postgres", "CREATE ROLE late LOGIN").unwrap();
        assert!(bouncer.psql_as("app", "late", "select 1").is_err());
        bouncer.reload_users(&pg).unwrap();
        assert_eq!(bouncer.psql_as("app", "late", "select current_user").unwrap(), "late");
    }
}
