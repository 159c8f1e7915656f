//! `kind = "command"`: run a program (no shell) and read one JSON document from its stdout.
//!
//! The child gets its own process group, so a timeout (or the fetch being dropped)
//! kills whatever it spawned too, not just the direct child.

use super::client::ensure_json;
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Output beyond this is refused: a document, not a stream.
pub const MAX_STDOUT: u64 = 64 * 1024 * 1024;
/// How much of stderr is kept for the error message (the rest is read and dropped).
const STDERR_KEPT: usize = 4096;

/// The command source of one cache.
pub struct CommandSource {
    argv: Vec<String>,
    timeout: Duration,
    max_stdout: u64,
}

impl CommandSource {
    /// `timeout` applies along with the fetch's own; the shorter wins.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        Self { argv, timeout, max_stdout: MAX_STDOUT }
    }

    async fn run(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(SourceError::Permanent("the command's argv is empty".into()));
        };
        let limit = self.timeout.min(request.timeout);
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| SourceError::Permanent(format!("cannot start `{program}`: {e}")))?;
        let group = ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(SourceError::Transient(format!("`{program}`: no pipes to read")));
        };

        let work = async {
            let (out, err) = tokio::join!(
                async {
                    let out = read_capped(stdout, self.max_stdout).await;
                    if !matches!(out, Ok(Some(_))) {
                        group.kill(); // too much output, or unreadable: stop it now
                    }
                    out
                },
                read_kept(stderr, STDERR_KEPT),
            );
            (out, err, child.wait().await)
        };
        let outcome = tokio::time::timeout(limit, work).await;
        let Ok((out, err, status)) = outcome else {
            group.kill();
            let _ = child.kill().await; // also reaps it
            return Err(SourceError::Transient(format!("`{program}` timed out after {limit:?}; killed")));
        };
        group.disarm();

        let status = status.map_err(|e| SourceError::Transient(format!("`{program}`: waiting for it: {e}")))?;
        let out = match out {
            Ok(Some(out)) => out,
            Ok(None) => {
                let cap = self.max_stdout;
                return Err(SourceError::Permanent(format!("`{program}` wrote more than {cap} bytes to stdout")));
            }
            Err(e) => return Err(SourceError::Transient(format!("`{program}`: reading stdout: {e}"))),
        };
        if !status.success() {
            let first_line = String::from_utf8_lossy(&err);
            let first_line = first_line.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            return Err(SourceError::Permanent(format!("`{program}` failed ({status}): {first_line}")));
        }
        ensure_json(&out, &format!("`{program}`'s output"))?;
        Ok(Fetched::new(out, Vec::new()))
    }
}

impl Source for CommandSource {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.run(request))
    }
}

/// Kills the child's process group when dropped, unless the child finished normally.
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// All of `reader`, or `None` once it passes `cap` bytes.
async fn read_capped(reader: impl AsyncRead + Unpin, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    reader.take(cap + 1).read_to_end(&mut buf).await?;
    Ok((buf.len() as u64 <= cap).then_some(buf))
}

/// The first `keep` bytes of `reader`, reading the rest so the child never blocks on it.
async fn read_kept(mut reader: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn request(timeout: Duration) -> FetchRequest {
        FetchRequest::plain(timeout)
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    /// Gone, or a zombie waiting for a reaper that is not us.
    fn is_gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn passes_json_stdout_through() {
        let source = CommandSource::new(
            sh(r#"echo '{"total": "1234.56", "n": 12345678901234567890.01}'"#),
            Duration::from_secs(5),
        );
        let fetched = source.fetch(request(Duration::from_secs(5))).await.unwrap();
        assert_eq!(fetched.body, b"{\"total\": \"1234.56\", \"n\": 12345678901234567890.01}\n");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_child_and_what_it_spawned() {
        let dir = tempfile::tempdir().unwrap();
        let (child_pid, grandchild_pid) = (dir.path().join("child"), dir.path().join("grandchild"));
        let script = format!(
            "sleep 30 & echo $! > {}; echo $$ > {}; exec sleep 30",
            grandchild_pid.display(),
            child_pid.display()
        );
        let source = CommandSource::new(sh(&script), Duration::from_millis(300));
        let started = Instant::now();
        let err = source.fetch(request(Duration::from_secs(10))).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(matches!(&err, SourceError::Transient(m) if m.contains("timed out")), "{err:?}");
        let child = std::fs::read_to_string(child_pid).unwrap();
        let grandchild = std::fs::read_to_string(grandchild_pid).unwrap();
        assert!(std::fs::metadata(format!("/proc/{}", child.trim())).is_err(), "the child was killed and reaped");
        let deadline = Instant::now() + Duration::from_secs(1);
        while !is_gone(grandchild.trim()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(is_gone(grandchild.trim()), "the grandchild was killed too");
    }

    #[tokio::test]
    async fn the_fetch_timeout_wins_when_shorter() {
        let source = CommandSource::new(vec!["sleep".into(), "30".into()], Duration::from_secs(60));
        let started = Instant::now();
        let err = source.fetch(request(Duration::from_millis(200))).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn output_that_is_not_json_is_an_error() {
        let source = CommandSource::new(sh("echo not json"), Duration::from_secs(5));
        let err = source.fetch(request(Duration::from_secs(5))).await.unwrap_err();
        assert!(matches!(&err, SourceError::Permanent(m) if m.contains("not JSON")), "{err:?}");
    }

    #[tokio::test]
    async fn a_failure_reports_the_status_and_first_stderr_line() {
        let source =
            CommandSource::new(sh("echo '{}'; echo boom >&2; echo second >&2; exit 3"), Duration::from_secs(5));
        let err = source.fetch(request(Duration::from_secs(5))).await.unwrap_err();
        let SourceError::Permanent(message) = err else { panic!("{err:?}") };
        assert!(message.contains("exit status: 3") && message.contains("boom"), "{message}");
        assert!(!message.contains("second"), "{message}");
    }

    #[tokio::test]
    async fn too_much_output_and_missing_programs_are_errors() {
        let mut source = CommandSource::new(sh("head -c 5000 /dev/zero; sleep 30"), Duration::from_secs(5));
        source.max_stdout = 1000;
        let started = Instant::now();
        let err = source.fetch(request(Duration::from_secs(5))).await.unwrap_err();
        assert!(matches!(&err, SourceError::Permanent(m) if m.contains("more than 1000")), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "killed at once, not at the timeout");

        let missing = CommandSource::new(vec!["/nonexistent/tiercache-test".into()], Duration::from_secs(5));
        let err = missing.fetch(request(Duration::from_secs(5))).await.unwrap_err();
        assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
        let err = CommandSource::new(Vec::new(), Duration::from_secs(5)).fetch(request(Duration::from_secs(5))).await;
        assert!(matches!(err, Err(SourceError::Permanent(_))));
    }
}
