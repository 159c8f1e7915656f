//! A port another process holds is not a configuration error: exit 69 with its own
//! line naming the address; `check-config` (which opens no port) still passes.

use crate::helpers::run_cmd;
use std::fs;
use std::net::TcpListener;

#[test]
fn a_port_in_use_exits_69_with_its_own_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = format!("data_dir = \"data\"\n[log]\nformat = \"json\"\n[api]\nlisten = [\"{addr}\"]\n");
    fs::write(dir.path().join("tiercache.toml"), text).unwrap();

    let out = run_cmd(dir.path(), &["run", "--config", "tiercache.toml"], &[]);
    assert_eq!(out.code, 69, "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    assert!(lines[0].starts_with(&format!("cannot listen on {addr}: ")), "{}", lines[0]);
    assert!(lines[0].contains("in use"), "{}", lines[0]);
    assert!(!lines[0].contains("config error"), "not a configuration error: {}", lines[0]);

    let check = run_cmd(dir.path(), &["check-config", "--config", "tiercache.toml"], &[]);
    assert_eq!(check.code, 0, "{check:?}");
    drop(taken);
}
