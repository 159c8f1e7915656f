//! In-process memory hit: how long the read path takes to find a cache in memory,
//! without HTTP. `cargo bench -p tiercache-actors --bench memory_hit`.
//!
//! Starts the real actors (memory and file tiers, in an actix `System`, on a temp
//! `data_dir`), saves a 10 KB and a 1 MB document through the save flow, then times
//! over millions of iterations:
//!
//! - `MemoryView::fresh`: the `ArcSwap` load, the `HashMap` lookup and the TTL check
//!   the API does on every read;
//! - `Tiers::read`: the whole read flow on a memory hit (what the API handler awaits);
//! - the `tiercache_reads_total` increment as the API handler does it (a label with an
//!   owned cache name, looked up in the metric family), for comparison;
//! - decoding a 1 MB envelope file (the CPU part of a cold read) and its SHA-256;
//! - canonicalising 1 MB of JSONB text (the CPU part of a read from Postgres besides
//!   the SHA-256), streamed and through a `serde_json::Value` tree.
//!
//! No criterion: each measurement is the best of several rounds of a fixed number of
//! iterations, in ns per operation. Set `MEMORY_HIT_ITERS` to change the count.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_actors::cache_rules::{CacheRules, Rules};
use tiercache_actors::domain::{canonical, envelope, CacheName, Checksum, Precondition};
use tiercache_actors::metrics::{CacheTier, Metrics, TierLabel};
use tiercache_actors::refresher::RefreshPolicy;
use tiercache_actors::retry_queue::BackoffPolicy;
use tiercache_actors::runtime::Runtime;
use tiercache_actors::supervisor::RestartPolicy;
use tiercache_actors::system::{RefreshConfig, SystemConfig};

const ROUNDS: usize = 5;

/// Best and median ns/op over [`ROUNDS`] rounds of `iters` calls of `f`.
fn measure(label: &str, iters: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iters {
                f();
            }
            started.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    println!(
        "{label:<52} {:>9.1} ns/op (median {:>7.1}, {iters} iterations x {ROUNDS})",
        per_op[0],
        per_op[ROUNDS / 2]
    );
    per_op[0]
}

fn main() {
    let iters: u64 = std::env::var("MEMORY_HIT_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SystemConfig {
        data_dir: dir.path().join("data"),
        project: "bench".into(),
        memory_ttl: Duration::from_secs(3600),
        restart_policy: RestartPolicy::default(),
        hits_by_message: false,
        retention_days: HashMap::new(),
        postgres: None,
        rules: Rules::new(
            [("k10", 10_000), ("m1", 1_000_000)]
                .into_iter()
                .map(|(n, _)| n.to_owned())
                .chain((0..30).map(|i| format!("other{i:02}")))
                .map(|n| (CacheName::parse(&n).expect("name"), CacheRules { max_size: 64 << 20, schema: None }))
                .collect(),
        ),
        refresh: RefreshConfig {
            caches: Vec::new(),
            policy: RefreshPolicy {
                fetch_timeout: Duration::from_secs(60),
                jitter: Duration::ZERO,
                backoff: BackoffPolicy {
                    initial_interval: Duration::from_secs(1),
                    max_interval: Duration::from_secs(300),
                    multiplier: 2.0,
                },
            },
            emergency: false,
        },
    };
    let ttl = config.memory_ttl;
    actix_rt::System::new().block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let runtime = Runtime::boot(&config, metrics.clone()).expect("actors start");
        let tiers = runtime.tiers().clone();
        let saver = runtime.saver().clone();
        tiers.on_disk().await.expect("file tier up");
        // A few neighbours, so the lookup is not in a one-entry map.
        let mut names = Vec::new();
        for (name, size) in [("k10", 10_000), ("m1", 1_000_000)]
            .into_iter()
            .chain((0..30).map(|i| (Box::leak(format!("other{i:02}").into_boxed_str()) as &str, 100)))
        {
            let name = CacheName::parse(name).expect("name");
            let doc = saver.admit(&name, &common::generated(size)).expect("admitted");
            saver.save(&name, doc, Precondition::None, 0).await.expect("saved");
            names.push(name);
        }
        let view = tiers.view().clone();
        println!("memory hit, in process ({} cores; other load on the machine shows here too)", num_cpus());
        for name in &names[..2] {
            let hit = view.fresh(name, ttl).expect("in memory");
            println!("-- cache {name}: {} bytes", hit.doc.body.len());
            measure(&format!("MemoryView::fresh({name})"), iters, || {
                black_box(view.fresh(black_box(name), ttl));
            });
            // `Tiers::read` is async but never waits on a hit: time it in a loop of awaits.
            let mut best = f64::MAX;
            for _ in 0..ROUNDS {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(tiers.read(black_box(name)).await.expect("hit"));
                }
                best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
            }
            println!(
                "{:<52} {best:>9.1} ns/op (best of {ROUNDS} x {iters})",
                format!("Tiers::read({name}) on a memory hit")
            );
        }
        let name = names[0].clone();
        measure("reads_total inc with an owned label (as the API)", iters, || {
            metrics.reads.get_or_create(&CacheTier { cache: name.to_string(), tier: "memory" }).inc();
        });
        measure("read_duration observe (as the API)", iters, || {
            metrics.read_duration.get_or_create(&TierLabel { tier: "memory" }).observe(black_box(0.000_02));
        });
        // The CPU part of a cold read from file: decoding a 1 MB envelope (header
        // parse + SHA-256 of the body), and the SHA-256 alone.
        let m1 = view.get(&names[1]).expect("m1 in memory").doc.clone();
        let file = bytes::Bytes::from(envelope::encode("bench", &m1));
        let decode_iters = (iters / 20_000).max(20);
        let ns = measure("envelope::decode_bytes of the 1 MB file", decode_iters, || {
            black_box(envelope::decode_bytes("bench", &m1.name, file.clone()).expect("valid"));
        });
        println!("{:<52} {:>9.3} ms", "  = cold-read CPU per 1 MB cache", ns / 1e6);
        measure("Checksum::of 1 MB (SHA-256)", decode_iters, || {
            black_box(Checksum::of(black_box(&m1.body)));
        });
        // The CPU part of a read from Postgres: the row's `data::text` (JSONB prints
        // `", "` and `": "` and orders keys by length) back to the canonical form,
        // streamed, and through a `Value` tree as before, for comparison.
        let jsonb = common::jsonb_text(&m1.body);
        let streamed = canonical::canonicalize_slice(jsonb.as_bytes()).expect("JSON");
        assert_eq!(streamed, m1.body.as_ref(), "the canonical form of the JSONB text is the document");
        measure("canonicalize_slice of 1 MB JSONB text (daemon parser)", decode_iters, || {
            black_box(canonical::canonicalize_slice(black_box(jsonb.as_bytes())).expect("JSON"));
        });
        measure("canonicalize of 1 MB JSONB text via a Value tree", decode_iters, || {
            let value: serde_json::Value = serde_json::from_slice(black_box(jsonb.as_bytes())).expect("JSON");
            black_box(canonical::canonicalize(&value));
        });
        actix::System::current().stop();
    });
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
