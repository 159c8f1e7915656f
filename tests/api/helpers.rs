//! Starting the real `tiercache` binary on its own temp dir and port, talking to it over
//! HTTP, sending it signals and reading its logs.
//!
//! Every [`TestApp`] owns a temp dir that is both the daemon's working directory and the
//! parent of its `data_dir` (`./data`), a config file `tiercache.toml` in it, and a free
//! TCP port, so tests run in parallel without sharing anything. The daemon's stdout and
//! stderr of each start go to `stdout.N.log` / `stderr.N.log` in the temp dir; set
//! `TEST_LOG=1` to have them echoed when the app is dropped (use `--nocapture`).

#![allow(dead_code)]

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tiercache");

/// How long a daemon may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a daemon may take to exit after SIGTERM (or on its own).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables of the process environment that would change the daemon's configuration.
const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "SUPABASE_ENABLED",
    "SUPABASE_DB_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "DATABASE_URL",
    "PROJECT_ID",
    "STRAVA_CACHE_HOURS",
    "FUNDRAISING_CACHE_MINUTES",
    "CACHE_TTL_SECONDS",
    "GRACEFUL_SHUTDOWN",
    "EMERGENCY_REFRESH",
    "BACKGROUND_RETRY",
    "FAILPOINTS",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "CREDENTIALS_DIRECTORY",
];

/// A command for the binary with a clean, predictable environment.
pub fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TIERCACHE__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The parts of the config file a test can add to. The helper always writes
/// `data_dir = "data"`, `[log] format = "json"` and `[api] listen = ["127.0.0.1:PORT"]`.
#[derive(Clone, Default, Debug)]
pub struct Options {
    /// Top-level keys (before any table).
    pub top: String,
    /// Lines inside `[log]`.
    pub log: String,
    /// Lines inside `[api]`.
    pub api: String,
    /// More entries of `api.listen` (e.g. `unix:api.sock`).
    pub extra_listen: Vec<String>,
    /// Further tables: `[supervisor]`, `[[caches]]`...
    pub tables: String,
    /// Environment of the daemon.
    pub env: Vec<(String, String)>,
}

impl Options {
    /// The defaults (the built-in caches `strava` and `fundraising`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds top-level keys.
    pub fn top(mut self, lines: &str) -> Self {
        self.top.push_str(lines);
        self.top.push('\n');
        self
    }

    /// Adds lines to `[log]`.
    pub fn log(mut self, lines: &str) -> Self {
        self.log.push_str(lines);
        self.log.push('\n');
        self
    }

    /// Adds lines to `[api]`.
    pub fn api(mut self, lines: &str) -> Self {
        self.api.push_str(lines);
        self.api.push('\n');
        self
    }

    /// Adds a listener.
    pub fn listen(mut self, addr: &str) -> Self {
        self.extra_listen.push(addr.to_owned());
        self
    }

    /// Adds tables after the fixed ones.
    pub fn tables(mut self, text: &str) -> Self {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Declares caches (replacing the built-in two) without a schedule: `[[caches]] name = ...`.
    pub fn caches(mut self, names: &[&str]) -> Self {
        for name in names {
            self.tables.push_str(&format!("[[caches]]\nname = \"{name}\"\n"));
        }
        self
    }

    /// The config file for `port`.
    pub fn config_text(&self, port: u16) -> String {
        let mut listen = vec![format!("\"127.0.0.1:{port}\"")];
        listen.extend(self.extra_listen.iter().map(|l| format!("\"{l}\"")));
        format!(
            "data_dir = \"data\"\n{top}\n[log]\nformat = \"json\"\n{log}\n[api]\nlisten = [{listen}]\n{api}\n{tables}",
            top = self.top,
            log = self.log,
            listen = listen.join(", "),
            api = self.api,
            tables = self.tables,
        )
    }
}

/// An HTTP answer of any status.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Header names in lower case; the first value of each.
    pub headers: HashMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Resp {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The body parsed as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (status {})", self.body, self.status))
    }

    /// Asserts the body is a JSON error `{"error": "...", "code": "..."}` and returns the code.
    pub fn assert_json_error(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "error content type {ct:?}: {self:?}");
        let v = self.json();
        let error = v.get("error").and_then(Value::as_str);
        let code = v.get("code").and_then(Value::as_str);
        assert!(error.is_some_and(|e| !e.is_empty()), "no \"error\" string in {v}");
        assert!(code.is_some_and(|c| !c.is_empty()), "no \"code\" string in {v}");
        code.unwrap().to_owned()
    }

    /// The version in the `ETag` (`"VERSION-C"`).
    pub fn etag_version(&self) -> u64 {
        let etag = self.header("etag").unwrap_or_else(|| panic!("no ETag: {self:?}"));
        parse_etag(etag).0
    }
}

/// Splits an ETag `"VERSION-C"` into its version and checksum prefix, checking its shape.
pub fn parse_etag(etag: &str) -> (u64, String) {
    let inner =
        etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or_else(|| panic!("ETag not quoted: {etag:?}"));
    let (version, hex) = inner.split_once('-').unwrap_or_else(|| panic!("ETag without '-': {etag:?}"));
    assert_eq!(hex.len(), 16, "ETag checksum part is not 16 hex digits: {etag:?}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "ETag hex: {etag:?}");
    (version.parse().unwrap_or_else(|_| panic!("ETag version: {etag:?}")), hex.to_owned())
}

fn agent() -> ureq::Agent {
    // No pooled connections: each request is on its own connection, so a killed or
    // restarted daemon never leaves the client holding a dead one.
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .build()
}

fn into_resp(resp: ureq::Response) -> Resp {
    let status = resp.status();
    let mut headers = HashMap::new();
    for name in resp.headers_names() {
        if let Some(value) = resp.header(&name) {
            headers.entry(name.to_ascii_lowercase()).or_insert_with(|| value.to_owned());
        }
    }
    let mut body = String::new();
    resp.into_reader().read_to_string(&mut body).expect("read the body");
    Resp { status, headers, body }
}

/// Sends a request and returns the answer whatever its status; `Err` only for transport
/// errors (connection refused, reset...).
pub fn try_request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    match result {
        Ok(resp) => Ok(into_resp(resp)),
        Err(ureq::Error::Status(_, resp)) => Ok(into_resp(resp)),
        Err(ureq::Error::Transport(t)) => Err(t.to_string()),
    }
}

/// A started (or stopped) daemon with its own directory and port.
pub struct TestApp {
    /// Working directory; holds `data/`, the config file and the logs.
    pub dir: TempDir,
    /// The TCP port of the API.
    pub port: u16,
    /// What the config file is made of.
    pub options: Options,
    child: Option<Child>,
    runs: usize,
    agent: ureq::Agent,
}

/// Starts a daemon on the built-in caches and waits until it is ready.
pub fn spawn_app() -> TestApp {
    spawn_app_with(Options::new())
}

/// Starts a daemon with `options` and waits until it is ready.
pub fn spawn_app_with(options: Options) -> TestApp {
    let mut app = TestApp::new(options);
    // A port that was free when we looked may be taken by a parallel test by the time
    // the daemon binds it: try another one then.
    for _ in 0..5 {
        match app.try_start() {
            Ok(()) => return app,
            Err(stderr) if stderr.contains("cannot listen") => {
                app.port = free_port();
                app.write_config();
            }
            Err(stderr) => panic!("the daemon did not start:\n{stderr}\nstdout:\n{}", app.stdout()),
        }
    }
    panic!("no free port found")
}

impl TestApp {
    /// A temp dir with the config file written, nothing started.
    pub fn new(options: Options) -> Self {
        let dir = tempfile::Builder::new().prefix("tiercache-api-").tempdir().expect("temp dir");
        let app = Self { dir, port: free_port(), options, child: None, runs: 0, agent: agent() };
        app.write_config();
        app
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tiercache.toml")
    }

    /// `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `data_dir/caches/NAME.json`.
    pub fn cache_file(&self, name: &str) -> PathBuf {
        self.data_dir().join("caches").join(format!("{name}.json"))
    }

    /// Files in `data_dir/SUB` (empty when it does not exist).
    pub fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        match fs::read_dir(self.data_dir().join(sub)) {
            Ok(entries) => {
                let mut v: Vec<PathBuf> = entries.map(|e| e.expect("dir entry").path()).collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    /// (Re)writes the config file from [`Self::options`].
    pub fn write_config(&self) {
        fs::write(self.config_path(), self.options.config_text(self.port)).expect("write config");
    }

    /// Replaces the config file with `text` (for reload tests).
    pub fn write_raw_config(&self, text: &str) {
        fs::write(self.config_path(), text).expect("write config");
    }

    fn log_path(&self, stream: &str, run: usize) -> PathBuf {
        self.dir.path().join(format!("{stream}.{run}.log"))
    }

    /// Starts the daemon (again) on the same directory without waiting.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        self.runs += 1;
        let stdout = File::create(self.log_path("stdout", self.runs)).expect("stdout file");
        let stderr = File::create(self.log_path("stderr", self.runs)).expect("stderr file");
        let mut cmd = command(self.dir.path());
        cmd.arg("run").arg("--config").arg(self.config_path()).stdout(stdout).stderr(stderr);
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn tiercache"));
        self.agent = agent();
    }

    /// Starts and waits for `/readyz`; `Err(stderr)` when the process exited first.
    pub fn try_start(&mut self) -> Result<(), String> {
        self.spawn();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(code) = self.try_exit_code() {
                return Err(format!("exited with {code}: {}", self.stderr()));
            }
            if let Ok(r) = self.try_get("/readyz") {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {READY_TIMEOUT:?}: {}", self.stderr()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts and waits until ready, or panics.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("the daemon did not start: {e}\nstdout:\n{}", self.stdout());
        }
    }

    /// The running daemon's PID.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("daemon not running").id()).expect("pid")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        signal::kill(Pid::from_raw(self.pid()), sig).expect("send signal");
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("try_wait")?;
        self.child = None;
        Some(exit_code(status))
    }

    /// Waits for the process to exit and returns its exit code (128 + signal when killed
    /// by a signal); `None` after `timeout` (the process is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.try_exit_code() {
                return Some(code);
            }
            if self.child.is_none() || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then asserts a clean exit (0) within [`EXIT_TIMEOUT`].
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let code = self.wait_exit(EXIT_TIMEOUT);
        assert_eq!(code, Some(0), "exit after SIGTERM; stderr:\n{}", self.stderr());
    }

    /// SIGTERM, wait for exit 0, start again on the same directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let code = self.wait_exit(EXIT_TIMEOUT);
        assert_eq!(code, Some(128 + 9), "after SIGKILL");
    }

    /// Base URL of the API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Any request; transport errors as `Err`.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        try_request(&self.agent, method, &self.url(path), headers, body)
    }

    /// Any request; panics on transport errors.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// GET, transport errors as `Err`.
    pub fn try_get(&self, path: &str) -> Result<Resp, String> {
        self.try_request("GET", path, &[], None)
    }

    /// GET.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    /// GET with headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    /// GET `/v1/caches/NAME`.
    pub fn get_cache(&self, name: &str) -> Resp {
        self.get(&format!("/v1/caches/{name}"))
    }

    /// PUT `/v1/caches/NAME` with `Content-Type: application/json`.
    pub fn put_cache(&self, name: &str, body: &str) -> Resp {
        self.put_with(&format!("/v1/caches/{name}"), body.as_bytes(), &[("Content-Type", "application/json")])
    }

    /// PUT with exactly these headers.
    pub fn put_with(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        self.request("PUT", path, headers, Some(body))
    }

    /// PUT that must answer 200; returns the answer.
    pub fn put_ok(&self, name: &str, body: &str) -> Resp {
        let r = self.put_cache(name, body);
        assert_eq!(r.status, 200, "PUT {name}: {r:?}");
        r
    }

    /// DELETE `/v1/caches/NAME`.
    pub fn delete_cache(&self, name: &str) -> Resp {
        self.request("DELETE", &format!("/v1/caches/{name}"), &[], None)
    }

    /// `/metrics` as text.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "/metrics: {r:?}");
        r.body
    }

    /// stdout of the current (or last) run.
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.log_path("stdout", self.runs)).unwrap_or_default()
    }

    /// stderr of the current (or last) run.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.log_path("stderr", self.runs)).unwrap_or_default()
    }

    /// The JSON log lines of the current run (lines that are not JSON objects are skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        self.stdout().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(Value::is_object).collect()
    }

    /// Waits until a log line of the current run satisfies `pred`, and returns it.
    pub fn wait_for_log(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(&pred) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {timeout:?}; stdout:\n{}", self.stdout());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line whose `message` contains `text`.
    pub fn wait_for_message(&self, text: &str) -> Value {
        self.wait_for_log(&format!("with message containing {text:?}"), Duration::from_secs(5), |l| {
            message(l).contains(text)
        })
    }
}

/// The `message` of a log line ("" when absent).
pub fn message(line: &Value) -> &str {
    line.get("message").and_then(Value::as_str).unwrap_or_default()
}

/// An exit code, or 128 + the signal that killed the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("TEST_LOG").is_some() {
            for run in 1..=self.runs {
                for stream in ["stdout", "stderr"] {
                    let text = fs::read_to_string(self.log_path(stream, run)).unwrap_or_default();
                    eprintln!("----- daemon {stream}, run {run} -----\n{text}");
                }
            }
        }
    }
}

/// The result of running the binary to completion.
#[derive(Debug)]
pub struct Output {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Output {
    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs the binary with `args` in `cwd` and `env`, killing it after [`EXIT_TIMEOUT`]
/// (a command that should fail at once but starts a daemon instead is a failure, not a hang).
pub fn run_cmd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(cwd);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tiercache");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`tiercache {}` did not exit within {EXIT_TIMEOUT:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: exit_code(status),
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Whether a JSON object text has a key twice at its top level (serde_json keeps only
/// the last, so a parsed `Value` cannot tell).
pub fn duplicate_top_level_keys(line: &str) -> Vec<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let _: IgnoredAny = map.next_value()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let keys = de.deserialize_map(Keys).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    keys.into_iter().filter(|k| !seen.insert(k.clone())).collect()
}

/// A small xorshift generator: deterministic from its seed, so a failure replays.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}
