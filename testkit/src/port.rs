//! Free TCP ports for the servers the tests start: one record for the whole test
//! process, so a daemon, a Postgres cluster and a pgbouncer never get the same port.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// A port that is free on `127.0.0.1` now and was not handed out before in this
/// process, never 5432 (the machine's own PostgreSQL).
pub fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("cannot bind a TCP port on 127.0.0.1");
        if port != 5432 && TAKEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}
