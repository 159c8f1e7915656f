//! The bare durable-write pattern, as the anchor for PUT: write a temp file, fsync it,
//! rename it over the target, fsync the directory; in a loop, one writer.
//!
//! `cargo run --release --example durable_write -- DIR [SECONDS] [BYTES]`
//! prints `writes_per_second N` (and the mean latency) on stdout.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: durable_write DIR [SECONDS] [BYTES]"));
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let bytes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10 * 1024);
    fs::create_dir_all(&dir).expect("create DIR");
    let target = dir.join("doc.json");
    let temp = dir.join(".doc.json.tmp");
    let dir_handle = File::open(&dir).expect("open DIR");
    let mut body = vec![b'x'; bytes];
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut writes: u64 = 0;
    while Instant::now() < deadline {
        // Different bytes every time, as a real save would be.
        body[..8].copy_from_slice(&writes.to_le_bytes());
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&temp).expect("temp file");
        f.write_all(&body).expect("write");
        f.sync_all().expect("fsync file");
        drop(f);
        fs::rename(&temp, &target).expect("rename");
        dir_handle.sync_all().expect("fsync dir");
        writes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("writes_per_second {:.1}", writes as f64 / elapsed);
    println!("mean_ms {:.3}", elapsed * 1000.0 / writes as f64);
}
