#!/usr/bin/env python3
"""A storm of saves against a running tiercache with Postgres enabled.

    bench/put_storm.py --url http://127.0.0.1:PORT --pid PID --doc DOC.json \
        --caches storm01,storm02,... [--saves 10000] [--connections 8]

Fires --saves PUTs of the document in DOC.json (made unique per request by a leading
"n" key), round-robin over --caches, from --connections threads with one keep-alive
HTTP/1.1 connection each, and measures the acknowledged saves per second. Then reads
/metrics right away (queue depth, oldest pending age, Postgres writes so far) and polls it
until the retry queue is empty (the drain time, counted from the last acknowledgement).
The daemon's VmRSS (/proc/PID/status) is sampled every 20 ms from before the storm until
the drain ends. --no-postgres: the daemon runs without Postgres (no queue to wait for).

Prints one "key value" line per result for bench/postgres.sh, plus "acked CACHE VERSION"
lines with the newest acknowledged version of each cache (from the ETags), so the caller
can check that Postgres converged to them. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import re
import sys
import threading
import time
import urllib.parse


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics(host: str, port: int | None) -> dict[str, float]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def metric(values: dict[str, float], name: str, default: float = 0.0) -> float:
    return values.get(name, default)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--caches", required=True)
    ap.add_argument("--saves", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    ap.add_argument("--no-postgres", action="store_true", help="the daemon runs without Postgres: no queue to wait for")
    args = ap.parse_args()

    url = urllib.parse.urlparse(args.url)
    host, port = url.hostname or "127.0.0.1", url.port
    caches = args.caches.split(",")
    with open(args.doc, "rb") as f:
        doc = f.read().strip()
    assert doc.startswith(b"{") and len(doc) > 2
    rest = doc[1:]

    # RSS sampler: from now until told to stop.
    rss = {"before": rss_kb(args.pid), "peak": 0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            try:
                rss["peak"] = max(rss["peak"], rss_kb(args.pid))
            except OSError:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    counter = itertools.count()
    lock = threading.Lock()
    acked = dict.fromkeys(caches, 0)
    counts = {"ok": 0, "failed": 0}
    all_latencies: list[float] = []
    last_ack = [0.0]

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        latencies: list[float] = []
        ok = failed = 0
        newest: dict[str, int] = {}
        while True:
            i = next(counter)
            if i >= args.saves:
                break
            cache = caches[i % len(caches)]
            body = b'{"n":%d,' % i + rest
            t = time.perf_counter()
            try:
                conn.request("PUT", f"/v1/caches/{cache}", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                etag = resp.getheader("ETag") or ""
            except (OSError, http.client.HTTPException) as e:
                print(f"# PUT {cache}: {e}", file=sys.stderr)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                failed += 1
                continue
            done = time.perf_counter()
            latencies.append(done - t)
            if status == 200:
                ok += 1
                version = int(etag.strip('"').split("-", 1)[0])
                newest[cache] = max(newest.get(cache, 0), version)
            else:
                failed += 1
        conn.close()
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed
            all_latencies.extend(latencies)
            for c, v in newest.items():
                acked[c] = max(acked[c], v)
            last_ack[0] = max(last_ack[0], time.perf_counter())

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ended = time.perf_counter()

    # The queue right after the last acknowledgement.
    m = metrics(host, port)
    end_depth = metric(m, "tiercache_retry_queue_depth")
    end_age = metric(m, "tiercache_retry_queue_oldest_age_seconds")
    end_writes = metric(m, 'tiercache_postgres_writes_total{result="ok"}')

    # Until the queue is empty.
    deadline = time.perf_counter() + args.drain_timeout
    drained = ended if args.no_postgres else None
    while drained is None and time.perf_counter() < deadline:
        m = metrics(host, port)
        if metric(m, "tiercache_retry_queue_depth", 1.0) == 0:
            drained = time.perf_counter()
            break
        time.sleep(0.02)
    sampling.set()
    sampler.join()
    after = rss_kb(args.pid)

    lat = sorted(all_latencies)

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else 0.0

    elapsed = ended - started
    print(f"saves {args.saves}")
    print(f"acked {counts['ok']}")
    print(f"failed {counts['failed']}")
    print(f"elapsed_s {elapsed:.3f}")
    print(f"acked_per_s {counts['ok'] / elapsed:.1f}")
    print(f"put_p50_ms {p(0.50):.2f}")
    print(f"put_p99_ms {p(0.99):.2f}")
    print(f"end_queue_depth {end_depth:.0f}")
    print(f"end_oldest_age_s {end_age:.3f}")
    print(f"end_pg_writes_ok {end_writes:.0f}")
    print(f"drain_s {(drained - ended):.3f}" if drained is not None else "drain_s timeout")
    for result in ("ok", "error", "rejected"):
        count = metric(m, f'tiercache_postgres_writes_total{{result="{result}"}}')
        print(f"pg_writes_{result} {count:.0f}")
    print(f"rss_before_kb {rss['before']}")
    print(f"rss_peak_kb {max(rss['peak'], after)}")
    print(f"rss_after_kb {after}")
    for c in caches:
        print(f"acked_version {c} {acked[c]}")


if __name__ == "__main__":
    main()
