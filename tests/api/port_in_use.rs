//! A port another process holds is not a configuration error: exit 69 with its own
//! line naming the address and quoting what the bind answered; `check-config` (which
//! opens no port) still passes. Two entries of `api.listen` on one address are the
//! configuration's mistake: exit 78 naming both.

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
    // What the bind answered, word for word, and no guess at who holds the port.
    assert!(lines[0].contains("the bind answered \"Address already in use"), "{}", lines[0]);
    assert!(!lines[0].contains("another process listens"), "{}", lines[0]);
    assert!(!lines[0].contains("config error"), "not a configuration error: {}", lines[0]);

    let check = run_cmd(dir.path(), &["check-config", "--config", "tiercache.toml"], &[]);
    assert_eq!(check.code, 0, "{check:?}");
    drop(taken);
}

#[test]
fn two_listen_entries_on_one_address_are_a_configuration_error_naming_both() {
    let port = tiercache_testkit::port::free_port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = \"data\"\n[log]\nformat = \"json\"\n[api]\nlisten = [\"127.0.0.1:{port}\", \"unix:api.sock\", \"127.0.0.1:{port}\"]\n"
    );
    fs::write(dir.path().join("tiercache.toml"), text).unwrap();
    let out = run_cmd(dir.path(), &["run", "--config", "tiercache.toml"], &[]);
    assert_eq!(out.code, 78, "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    let line = lines[0];
    assert!(line.starts_with(&format!("config error: api.listen[2]: cannot listen on 127.0.0.1:{port}: ")), "{line}");
    assert!(line.contains(&format!("api.listen[0] (\"127.0.0.1:{port}\") already listens")), "{line}");
    assert!(line.contains("the bind answered: Address already in use"), "{line}");
}
