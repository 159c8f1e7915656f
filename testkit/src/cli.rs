//! Running the `tiercache` binary as a command: a clean environment, and running a
//! command to completion with its output captured.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Variables of the test's environment that would change the daemon's configuration;
/// they are never passed on (tests set them explicitly).
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

/// A command for `bin` in `cwd` with a clean, predictable environment (no variable that
/// configures the daemon, stdin closed).
pub fn command(bin: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin);
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

/// An exit code, or 128 + the signal that ended the process.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The result of running the binary to completion.
#[derive(Debug)]
pub struct Output {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// The non-empty lines of standard error.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs `bin ARGS` in `cwd` with `env` over a clean environment, killing it after
/// `timeout` (a command that should end but starts a daemon instead is a failure, not
/// a hang).
pub fn run(bin: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = command(bin, cwd);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{} {}` did not exit within {timeout:?}", bin.display(), args.join(" "));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: exit_code(status),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread (so a full pipe never blocks the child).
fn read_all(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}
