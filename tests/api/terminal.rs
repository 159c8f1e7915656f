//! `log.format` unset: lines for people when stdout is a terminal (a pseudo-terminal
//! here), JSON lines when it is not; actix-server's start-up INFO lines in neither.

use crate::helpers::command;
use nix::pty::openpty;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::free_port;

/// A config without `[log]`, so the format is decided by stdout.
fn unset_format_config(dir: &std::path::Path) {
    let text = format!("data_dir = \"data\"\n[api]\nlisten = [\"127.0.0.1:{}\"]\n", free_port());
    std::fs::write(dir.join("tiercache.toml"), text).unwrap();
}

fn run(dir: &std::path::Path, stdout: Stdio) -> Child {
    let mut cmd = command(dir);
    cmd.args(["run", "--config", "tiercache.toml"]).stdout(stdout).stderr(Stdio::null());
    cmd.spawn().expect("spawn tiercache")
}

/// Waits until `text` shows `what`, then stops the daemon with SIGTERM.
fn stop_once(child: &mut Child, text: impl Fn() -> String, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text().contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} within 10 s:\n{}", text());
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", text());
}

#[test]
fn on_a_terminal_the_lines_are_for_people() {
    let dir = tempfile::tempdir().unwrap();
    unset_format_config(dir.path());
    let pty = openpty(None, None).expect("a pseudo-terminal");
    let mut child = run(dir.path(), Stdio::from(pty.slave));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        let mut master = std::fs::File::from(pty.master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the daemon, the last holder of the terminal, exits.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    stop_once(&mut child, text, " ready");
    std::thread::sleep(Duration::from_millis(200));
    let out = text();
    drop(reader);
    assert!(out.contains("INFO"), "{out}");
    assert!(
        out.lines().all(|l| serde_json::from_str::<serde_json::Value>(l.trim()).is_err()),
        "JSON on a terminal:\n{out}"
    );
    assert!(!out.contains("actix_server") && !out.contains("starting service"), "actix's lines:\n{out}");
}

#[test]
fn through_a_pipe_the_lines_are_json() {
    let dir = tempfile::tempdir().unwrap();
    unset_format_config(dir.path());
    let path = dir.path().join("stdout.log");
    let mut child = run(dir.path(), Stdio::from(std::fs::File::create(&path).unwrap()));
    let text = || std::fs::read_to_string(&path).unwrap_or_default();
    stop_once(&mut child, text, "\"message\":\"ready\"");
    let out = text();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        assert!(!target.starts_with("actix_server"), "actix's start-up line: {line}");
    }
}
