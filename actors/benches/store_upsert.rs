//! The Postgres tier in process: upserts per second through the store actor, and reads
//! from Postgres into the file tier. Run by `bench/postgres.sh` next to pgbench doing the
//! same statements on the same throwaway cluster; by hand:
//!
//! ```text
//! TIERCACHE_BENCH_PG_URL='postgres://postgres@/postgres?host=%2Ftmp%2F...&port=...' \
//!     cargo bench -p tiercache-actors --bench store_upsert
//! ```
//!
//! The database needs schema.sql applied and a `projects` row for the project `bench`
//! (the store registers it if the role may). Without `TIERCACHE_BENCH_PG_URL` the bench
//! says so and exits 0.
//!
//! The store actor is built exactly as the daemon builds it (`Store::new` under an
//! actix `Supervisor`, called through `StoreHandle`), with `pool_size = 1` and
//! `statement_cache = true` (prepared, cached statements, as pgbench `-M prepared`).
//!
//! 1. Upserts: `StoreHandle::write` of the same 10 KB canonical document in a loop, one
//!    at a time, each with the next version (client-side counter starting at the epoch
//!    in microseconds, so the version guard lets every write through, also on a rerun).
//!    Prints `upsert_per_second N` and the latency mean and p99.
//! 2. Reads into the file tier: a 10 KB and a 1 MB row, each `ITERS` times:
//!    `StoreHandle::read` (the row's data canonicalised and checked against its checksum)
//!    then `envelope::encode` and `durable::write_atomic` (temp, fsync, rename, fsync of
//!    the directory), as the read flow does when it rewrites a file from a row.
//!    Prints the mean and p99 in ms of the whole, and of the read alone.
//!
//! Settings: `STORE_UPSERT_SECONDS` (10; 0 skips part 1), `STORE_READ_ITERS` (50; 0
//! skips part 2), `TIERCACHE_BENCH_DOC` and `TIERCACHE_BENCH_DOC_1M` (paths of the JSON
//! documents, so pgbench can send the same bytes; generated here when unset),
//! `STORE_UPSERT_CACHE` (the row the upsert loop writes, `rs10k`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_actors::domain::{envelope, CacheName, Document, NewDocument};
use tiercache_actors::files::durable;
use tiercache_actors::store::{ConnectConfig, Store, StoreConfig, StoreHandle, WriteOutcome};
use tiercache_actors::supervisor::FailureReporter;

const PROJECT: &str = "bench";
const RETENTION_DAYS: u32 = 30;

/// The canonical document from the file named by `var`, else a generated one.
fn document(var: &str, size: usize) -> NewDocument {
    let raw = match std::env::var(var) {
        Ok(path) if !path.is_empty() => std::fs::read(&path).unwrap_or_else(|e| panic!("{var}={path}: {e}")),
        _ => common::generated(size),
    };
    let doc = NewDocument::from_json(&raw).expect("the document is JSON");
    if doc.body[..] != raw[..] {
        // pgbench sends the file's bytes: say so when they are not what the store sends.
        println!("note: {var}: the file is not canonical JSON; the store sends its canonical form");
    }
    doc
}

fn versioned(name: &CacheName, doc: &NewDocument, version: u64) -> Arc<Document> {
    Arc::new(Document::new(
        name.clone(),
        version,
        doc.checksum,
        doc.last_fetch,
        doc.last_rich_fetch,
        chrono::Utc::now(),
        doc.body.clone(),
    ))
}

/// Mean and p99 (nearest rank) in ms.
fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    let rank = ((samples.len() as f64 * 0.99).ceil() as usize).clamp(1, samples.len());
    (mean, ms(samples[rank - 1]))
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn epoch_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_micros() as u64
}

fn main() {
    let Some(url) = std::env::var("TIERCACHE_BENCH_PG_URL").ok().filter(|u| !u.is_empty()) else {
        println!("store_upsert: TIERCACHE_BENCH_PG_URL is not set; skipped (bench/postgres.sh sets it)");
        return;
    };
    let seconds: f64 = env_or("STORE_UPSERT_SECONDS", 10.0);
    let iters: usize = env_or("STORE_READ_ITERS", 50);
    let upsert_cache = CacheName::parse(&std::env::var("STORE_UPSERT_CACHE").unwrap_or_else(|_| "rs10k".into()))
        .expect("STORE_UPSERT_CACHE is a cache name");
    let k10 = document("TIERCACHE_BENCH_DOC", 10 * 1024);
    let m1 = document("TIERCACHE_BENCH_DOC_1M", 1024 * 1024);
    let files = tempfile::tempdir().expect("temp dir");

    actix_rt::System::new().block_on(async move {
        let mut connect = ConnectConfig::new(url);
        connect.options.pool_size = 1;
        let store = Store::new(
            StoreConfig { connect, project: PROJECT.into() },
            FailureReporter::detached(),
            Default::default(),
        )
        .expect("store settings");
        let store = StoreHandle::new(actix::Supervisor::start(move |_| store));
        store.ping().await.expect("Postgres answers and the project is known");

        // --- 1. upserts -------------------------------------------------------------
        println!("document {} bytes, checksum {}", k10.body.len(), k10.checksum);
        if seconds > 0.0 {
            upserts(&store, &upsert_cache, &k10, seconds).await;
        }

        // --- 2. reads from Postgres into the file tier ------------------------------
        if iters > 0 {
            reads(&store, &[("10k", "rs10k_read", &k10), ("1m", "rs1m_read", &m1)], iters, files.path()).await;
        }
        actix::System::current().stop();
    });
}

/// `StoreHandle::write` of `doc` as `name` in a loop for `seconds`, one at a time, each
/// at the next version (a client-side counter from the epoch in microseconds).
async fn upserts(store: &StoreHandle, name: &CacheName, doc: &NewDocument, seconds: f64) {
    let mut version = epoch_micros();
    // Warm up: the connection, the prepared statement, the row.
    for _ in 0..20 {
        version += 1;
        store.write(versioned(name, doc, version), RETENTION_DAYS, None).await.expect("write");
    }
    let mut latencies = Vec::with_capacity(16_384);
    let mut rebased = 0u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        version += 1;
        let next = versioned(name, doc, version);
        let t = Instant::now();
        let outcome = store.write(next, RETENTION_DAYS, None).await.expect("write");
        latencies.push(t.elapsed());
        if outcome != WriteOutcome::Written {
            rebased += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = latencies.len();
    let (mean, p99) = stats(&mut latencies);
    println!("upsert_writes {writes} in {elapsed:.2} s (not written at their own version: {rebased})");
    println!("upsert_per_second {:.1}", writes as f64 / elapsed);
    println!("upsert_latency_ms mean {mean:.3} p99 {p99:.3}");
}

/// Each row written once, then read `iters` times (after 3 unmeasured reads that warm
/// the statement and the server's buffers), each read written to a file in `dir` as the
/// read flow does.
async fn reads(store: &StoreHandle, rows: &[(&str, &str, &NewDocument)], iters: usize, dir: &Path) {
    for &(label, name, doc) in rows {
        let name = CacheName::parse(name).expect("name");
        let stored = versioned(&name, doc, epoch_micros());
        store.write(stored.clone(), RETENTION_DAYS, None).await.expect("write the row to read");
        let path = dir.join(format!("{name}.json"));
        let (mut whole, mut read_only) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
        for i in 0..iters + 3 {
            let t = Instant::now();
            let row = store.read(name.clone()).await.expect("read").expect("the row exists");
            let read = t.elapsed();
            write_file(&path, &row);
            let total = t.elapsed();
            assert_eq!(row.checksum, stored.checksum, "read back what was written");
            if i >= 3 {
                whole.push(total);
                read_only.push(read);
            }
        }
        let (mean, p99) = stats(&mut whole);
        let (read_mean, read_p99) = stats(&mut read_only);
        println!("read_{label} bytes {} iters {iters}", doc.body.len());
        println!("read_{label}_to_file_ms mean {mean:.3} p99 {p99:.3}");
        println!("read_{label}_store_only_ms mean {read_mean:.3} p99 {read_p99:.3}");
    }
}

/// What the read flow does with a row: the envelope, written durably.
fn write_file(path: &Path, doc: &Document) {
    let bytes = envelope::encode(PROJECT, doc);
    durable::write_atomic(path, &bytes).expect("durable write");
}
