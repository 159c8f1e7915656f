//! The real `tiercache` binary, run by a test on a temporary working directory.
//!
//! A [`Daemon`] owns a temporary directory that is the daemon's working directory and
//! holds its configuration (`tiercache.toml`), its `data_dir` (`./data` unless the
//! configuration says otherwise) and the captured output of each run
//! (`stdout.N.log`, `stderr.N.log`). The API listens on `127.0.0.1` at a free port,
//! unless the configuration sets `api.listen` itself; the configuration file is the
//! test's text line for line, with only the missing `data_dir` and `listen` added
//! (`config_file.rs`). [`Daemon::restart`] starts it again on the same directory
//! and port (another free port only when a parallel test took it meanwhile).
//!
//! It is the one harness of `tests/api` and `tests/postgres`: requests are
//! `(method, path, body, headers)` and answer a [`Response`]; timeouts are
//! [`READY_TIMEOUT`], [`EXIT_TIMEOUT`] and [`crate::http::REQUEST_TIMEOUT`]; ports come
//! from [`free_port`]. CLI commands next to the daemon go through [`Daemon::run`].
//!
//! ```no_run
//! use tiercache_testkit::daemon::{Daemon, DaemonOptions};
//! let bin = std::path::Path::new("target/debug/tiercache"); // env!("CARGO_BIN_EXE_tiercache")
//! let mut d = Daemon::start(bin, DaemonOptions::new("[[caches]]\nname = \"a\"\n"));
//! let put = d.put("/v1/caches/a", br#"{"x":1}"#, &[("Content-Type", "application/json")]);
//! assert_eq!(put.status, 200);
//! assert_eq!(d.get("/v1/caches/a", &[]).header("x-cache-tier"), Some("memory"));
//! d.restart();
//! ```
//!
//! The process is killed when the value is dropped, and also (parent-death signal)
//! when the test process dies. When the test is panicking at that moment (an assertion
//! failed), the directory is kept and its path and the last [`FAILURE_LOG_LINES`] lines
//! of each run's output are printed to standard error, which the test harness shows with
//! the failure. Set `TEST_LOG=1` to have every run's whole output printed on every drop
//! (use `--nocapture`).

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

pub use crate::cli::{exit_code, Output};
pub use crate::http::{parse_etag, Response};
pub use crate::port::free_port;
pub use nix::sys::signal::Signal;

/// How long a daemon gets to become ready, unless [`DaemonOptions::ready_timeout`] says.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Daemon::restart`] and [`Daemon::stop`] wait for a clean exit, and
/// [`Daemon::run`] for a command to end: beyond the daemon's default `shutdown.timeout`
/// (30 s), so a slow drain fails the test with the exit code rather than a timeout. A
/// test that asserts a bound on how fast something ends states that bound itself.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(40);

/// How many lines of each run's output a [`Daemon`] dropped by a failing test prints.
pub const FAILURE_LOG_LINES: usize = 40;

/// How long [`Daemon::wait_for_message`] waits for a log line.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Daemon`] is started.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The configuration file's text (TOML). `data_dir` defaults to `"./data"` and
    /// `api.listen` to `["127.0.0.1:PORT"]` with a free port; both are added when absent.
    pub config: String,
    /// Environment variables of the daemon (over a scrubbed environment).
    pub env: Vec<(String, String)>,
    /// Whether [`Daemon::start`] waits for `GET /readyz` to answer 200.
    pub wait_ready: bool,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
    /// More entries of `api.listen` after the daemon's own `127.0.0.1:PORT` (e.g.
    /// `unix:api.sock`); unused when the configuration sets `api.listen` itself.
    pub listen: Vec<String>,
}

impl DaemonOptions {
    /// `config` as the configuration file; waits for readiness.
    pub fn new(config: impl Into<String>) -> Self {
        DaemonOptions {
            config: config.into(),
            env: Vec::new(),
            wait_ready: true,
            ready_timeout: READY_TIMEOUT,
            listen: Vec::new(),
        }
    }

    /// Sets an environment variable of the daemon (replacing an earlier value).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Whether [`Daemon::start`] and [`Daemon::restart`] wait for `/readyz`.
    pub fn wait_ready(mut self, on: bool) -> Self {
        self.wait_ready = on;
        self
    }

    /// How long to wait for readiness.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Adds an entry of `api.listen` after the daemon's own TCP address.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }
}

/// The real binary on a temporary directory. See the [module documentation](self).
pub struct Daemon {
    bin: PathBuf,
    opts: DaemonOptions,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    port: u16,
    /// Whether the port is ours to change (the configuration did not set `api.listen`).
    own_port: bool,
    data_dir: PathBuf,
    child: Option<Child>,
    runs: usize,
    agent: ureq::Agent,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("dir", &self.root)
            .field("port", &self.port)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("runs", &self.runs)
            .finish()
    }
}

impl Daemon {
    /// Writes the configuration into a new temporary directory and starts `bin run` there
    /// (waiting for readiness unless the options say not to). Panics with the daemon's
    /// output when it cannot start.
    pub fn start(bin: &Path, opts: DaemonOptions) -> Daemon {
        let mut d = Daemon::new(bin, opts);
        d.start_again();
        d
    }

    /// The directory and configuration, nothing started yet ([`Daemon::start_again`]
    /// starts it).
    pub fn new(bin: &Path, opts: DaemonOptions) -> Daemon {
        let dir = tempfile::Builder::new().prefix("tiercache-daemon-").tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        let mut d = Daemon {
            bin: bin.to_path_buf(),
            opts,
            dir: Some(dir),
            root: root.clone(),
            port: free_port(),
            own_port: true,
            data_dir: root.join("data"),
            child: None,
            runs: 0,
            agent: crate::http::agent(),
        };
        d.write_config();
        d
    }

    /// Writes the configuration file: the options' text with `data_dir` and `api.listen`
    /// added when absent (see [`crate::config_file`]).
    fn write_config(&mut self) {
        let done = crate::config_file::complete(&self.opts.config, self.port, &self.opts.listen);
        self.own_port = done.own_port;
        if let Some(port) = done.given_port {
            self.port = port;
        }
        self.data_dir = self.root.join(&done.data_dir);
        fs::write(self.config_path(), done.text).expect("write tiercache.toml");
    }

    /// The options; changes apply from the next (re)start.
    pub fn options_mut(&mut self) -> &mut DaemonOptions {
        &mut self.opts
    }

    /// Replaces the configuration text (the file is rewritten at once, with `data_dir`
    /// and the same port added as before when absent; text that is not TOML is written
    /// as is). Every (re)start writes it again.
    pub fn set_config(&mut self, config: impl Into<String>) {
        self.opts.config = config.into();
        self.write_config();
    }

    /// Sets an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.opts.env.retain(|(k, _)| k != key);
        self.opts.env.push((key.to_owned(), value.to_owned()));
    }

    /// Removes an environment variable for the next (re)start.
    pub fn remove_env(&mut self, key: &str) {
        self.opts.env.retain(|(k, _)| k != key);
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The API's TCP port (kept across restarts unless a parallel test took it).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `data_dir`, resolved against the working directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// `data_dir/caches/NAME.json`.
    pub fn cache_file(&self, name: &str) -> PathBuf {
        self.data_dir.join("caches").join(format!("{name}.json"))
    }

    /// Files in `data_dir/SUB`, sorted (empty when it does not exist).
    pub fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.data_dir.join(sub)) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).collect();
        files.sort();
        files
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("tiercache.toml")
    }

    /// The binary under test.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs `bin ARGS` to completion in the working directory with `env` over a clean
    /// environment (a CLI command next to the daemon); killed after [`EXIT_TIMEOUT`].
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        crate::cli::run(&self.bin, &self.root, args, env, EXIT_TIMEOUT)
    }

    /// The running process's id; panics when it is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is not running").id()
    }

    /// Number of starts so far (the current run's logs are `stdout.RUNS.log`).
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        self.write_config();
        self.runs += 1;
        let stdout = File::create(self.log_path("stdout", self.runs)).expect("stdout file");
        let stderr = File::create(self.log_path("stderr", self.runs)).expect("stderr file");
        let mut cmd = crate::cli::command(&self.bin, &self.root);
        cmd.arg("run").arg("--config").arg(self.config_path()).stdout(stdout).stderr(stderr);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = crate::spawn::spawn_long_lived(cmd, libc::SIGKILL)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.agent = crate::http::agent();
    }

    /// Starts the process and, when the options say so, waits until `/readyz` answers
    /// 200. `Err` with the daemon's standard error when it exits or is not ready in time.
    pub fn try_start(&mut self) -> Result<(), String> {
        self.spawn();
        if !self.opts.wait_ready {
            return Ok(());
        }
        let deadline = Instant::now() + self.opts.ready_timeout;
        loop {
            if let Some(code) = self.try_exit_code() {
                return Err(format!("exited with {code}: {}", self.stderr()));
            }
            if self.try_request("GET", "/readyz", None, &[]).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {:?}; stderr: {}", self.opts.ready_timeout, self.stderr()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a daemon made by [`Daemon::new`], or a stopped one again on the same
    /// directory; panics when it cannot. When the harness chose the port and a parallel
    /// test took it meanwhile (`cannot listen`), it moves to another free port (up to
    /// five tries).
    pub fn start_again(&mut self) {
        for attempt in 1.. {
            match self.try_start() {
                Ok(()) => return,
                Err(e) if self.own_port && attempt < 5 && e.contains("cannot listen") => {
                    self.port = free_port();
                    self.write_config();
                }
                Err(e) => panic!("the daemon did not start: {e}\nstdout:\n{}", self.stdout()),
            }
        }
    }

    /// Stops the daemon with SIGTERM (asserting exit 0 within [`EXIT_TIMEOUT`]), then
    /// starts it again on the same directory and port. One stopped by the test
    /// ([`Daemon::stop`], [`Daemon::kill9`], [`Daemon::wait_exit`]) is just started; one
    /// that ended on its own since fails the stop's assertion (a crash is not hidden).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.start_again();
    }

    /// SIGTERM, then asserts a clean exit (0) within [`EXIT_TIMEOUT`].
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let code = self.wait_exit(EXIT_TIMEOUT);
        assert_eq!(code, Some(0), "exit code after SIGTERM; stderr:\n{}\nstdout:\n{}", self.stderr(), self.stdout());
    }

    /// Sends `sig` to the running process.
    pub fn signal(&self, sig: Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("cannot send {sig} to the daemon: {e}"));
    }

    /// `kill -9` the running process, reap it and assert SIGKILL ended it (exit 137).
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let code = self.wait_exit(EXIT_TIMEOUT);
        assert_eq!(code, Some(128 + 9), "exit after SIGKILL; stderr:\n{}", self.stderr());
    }

    /// Whether the process is alive (a process that exited is reaped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
            None => false,
        }
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(exit_code(status))
    }

    /// Waits for the process to exit and returns its exit code (128 + the signal when a
    /// signal ended it); `None` when it is still running after `timeout` or was not
    /// running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            self.child.as_ref()?;
            if let Some(code) = self.try_exit_code() {
                return Some(code);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Any request; the answer whatever its status, `Err` only for transport errors
    /// (connection refused or reset, timeout).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        crate::http::try_request(&self.agent, method, &self.url(path), body, headers)
    }

    /// Any request; panics on transport errors.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Response {
        self.try_request(method, path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// `GET path`.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, None, headers)
    }

    /// `PUT path` with `body`. Give `Content-Type` yourself (or use [`Daemon::put_json`]).
    pub fn put(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
        self.request("PUT", path, Some(body), headers)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("DELETE", path, None, headers)
    }

    /// `PUT /v1/caches/NAME` with `Content-Type: application/json`.
    pub fn put_json(&self, name: &str, json: &str) -> Response {
        self.put(&format!("/v1/caches/{name}"), json.as_bytes(), &[("Content-Type", "application/json")])
    }

    /// [`Daemon::put_json`] that must answer 200; returns the answer.
    pub fn put_ok(&self, name: &str, json: &str) -> Response {
        let r = self.put_json(name, json);
        assert_eq!(r.status, 200, "PUT {name}: {r:?}");
        r
    }

    /// `GET /v1/caches/NAME`.
    pub fn get_cache(&self, name: &str) -> Response {
        self.get(&format!("/v1/caches/{name}"), &[])
    }

    /// `DELETE /v1/caches/NAME`.
    pub fn delete_cache(&self, name: &str) -> Response {
        self.delete(&format!("/v1/caches/{name}"), &[])
    }

    /// `GET /metrics`, the text.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics", &[]);
        assert_eq!(r.status, 200, "/metrics: {r:?}");
        r.body
    }

    /// The value of one sample in `/metrics` (`name{labels}` exactly as printed, or a
    /// bare name), if present.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric_value(&self.metrics(), sample)
    }

    fn log_path(&self, stream: &str, run: usize) -> PathBuf {
        self.root.join(format!("{stream}.{run}.log"))
    }

    /// Standard output of the current (or last) run.
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.log_path("stdout", self.runs)).unwrap_or_default()
    }

    /// Standard error of the current (or last) run.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.log_path("stderr", self.runs)).unwrap_or_default()
    }

    /// The lines of standard output of the current (or last) run.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout().lines().map(str::to_owned).collect()
    }

    /// Standard output of every run so far, in order.
    pub fn stdout_all(&self) -> String {
        (1..=self.runs).map(|run| fs::read_to_string(self.log_path("stdout", run)).unwrap_or_default()).collect()
    }

    /// The log lines of the current run that are JSON objects.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }

    /// Waits until a JSON log line of the current run satisfies `pred`, and returns it;
    /// panics with the output after `timeout`.
    pub fn wait_for_log(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(&pred) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {timeout:?}; stdout:\n{}", self.stdout());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to [`LOG_TIMEOUT`]) for a log line of the current run whose `message`
    /// contains `text`, and returns it.
    pub fn wait_for_message(&self, text: &str) -> serde_json::Value {
        self.wait_for_log(&format!("with message containing {text:?}"), LOG_TIMEOUT, |l| message(l).contains(text))
    }
}

impl Daemon {
    /// Prints every run's output to standard error: all of it, or its last `tail` lines.
    fn print_logs(&self, tail: Option<usize>) {
        for run in 1..=self.runs {
            for stream in ["stdout", "stderr"] {
                let path = self.log_path(stream, run);
                let text = fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
                let shown = if from > 0 {
                    format!(" (last {} of {} lines)", lines.len() - from, lines.len())
                } else {
                    String::new()
                };
                eprintln!("----- {}{shown} -----", path.display());
                for line in &lines[from..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            // The test failed: keep the directory and show how each run ended.
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
            eprintln!("----- daemon kept at {} (the test panicked) -----", self.root.display());
            self.print_logs(Some(FAILURE_LOG_LINES));
        } else if std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty() && v != "0") {
            self.print_logs(None);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// The `message` of a JSON log line ("" when absent).
pub fn message(line: &serde_json::Value) -> &str {
    line.get("message").and_then(serde_json::Value::as_str).unwrap_or_default()
}

/// The value of `sample` (a metric name with its labels as printed, e.g.
/// `tiercache_dead_letters_total{cache="poison"}`, or a bare name) in Prometheus text.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values() {
        let text = "# HELP x y\nfoo_total{cache=\"a\"} 3\nfoo_total{cache=\"ab\"} 4\nbar 1.5\n";
        assert_eq!(metric_value(text, "foo_total{cache=\"a\"}"), Some(3.0));
        assert_eq!(metric_value(text, "foo_total{cache=\"ab\"}"), Some(4.0));
        assert_eq!(metric_value(text, "bar"), Some(1.5));
        assert_eq!(metric_value(text, "foo_total"), None);
    }

    #[test]
    fn config_gets_data_dir_and_listen() {
        let mut d = Daemon::new(Path::new("/bin/false"), DaemonOptions::new("[api]\nmax_body = \"1MiB\"\n"));
        let t: toml::Table = fs::read_to_string(d.config_path()).unwrap().parse().unwrap();
        assert_eq!(t["data_dir"].as_str(), Some("./data"));
        assert_eq!(t["api"]["max_body"].as_str(), Some("1MiB"));
        assert_eq!(t["api"]["listen"][0].as_str(), Some(format!("127.0.0.1:{}", d.port()).as_str()));
        assert_eq!(d.data_dir(), d.dir().join("./data"));

        d.set_config("data_dir = \"x\"\n[api]\nlisten = [\"unix:s\", \"127.0.0.1:1234\"]\n");
        let t: toml::Table = fs::read_to_string(d.config_path()).unwrap().parse().unwrap();
        assert_eq!(t["api"]["listen"].as_array().unwrap().len(), 2);
        assert_eq!(d.port(), 1234);
        assert_eq!(d.data_dir(), d.dir().join("x"));
    }

    #[test]
    fn a_failing_test_keeps_the_directory() {
        let dir = std::sync::Mutex::new(PathBuf::new());
        let failed = std::panic::catch_unwind(|| {
            let d = Daemon::new(Path::new("/bin/false"), DaemonOptions::new(""));
            *dir.lock().unwrap() = d.dir().to_owned();
            panic!("a failed assertion");
        });
        assert!(failed.is_err());
        let dir = dir.into_inner().unwrap();
        assert!(dir.join("tiercache.toml").exists(), "{} was removed", dir.display());
        fs::remove_dir_all(&dir).unwrap();

        let d = Daemon::new(Path::new("/bin/false"), DaemonOptions::new(""));
        let dir = d.dir().to_owned();
        drop(d);
        assert!(!dir.exists(), "a passing test leaves nothing behind");
    }

    #[test]
    fn start_failure_is_reported() {
        let mut d = Daemon::new(Path::new("/bin/false"), DaemonOptions::new(""));
        let err = d.try_start().unwrap_err();
        assert!(err.contains("exited with 1"), "{err}");
        assert_eq!(d.wait_exit(Duration::from_secs(1)), None);
    }
}
