#!/usr/bin/env python3
"""`get` of a 10 KB cache from Python, against reading the same document from a file.

    target/python-venv/bin/python bench/client_get.py [--binary target/release/tiercache]
        [--rounds 30] [--per-round 40] [--size 10240]

Starts the daemon (release build by default) on a temporary directory with one cache,
saves a Strava-like document of about --size bytes, and times, in the same run and
interleaved round by round (so that a noisy neighbour slows every variant alike):

- `file json.load`: open the plain JSON file and `json.load` it (what the app did);
- `get unix 304` / `get tcp 304`: `Client.get` of unchanged data (a revalidation);
- `get unix 200` / `get tcp 200`: `Client.get` right after another client saved a new
  version (the whole document sent and parsed); the save is not timed;
- `get unix first`: `Client.get` with no copy held (the first `get` of a cache: the
  whole document sent and parsed, nothing saved just before);
- `get ttl hit`: `Client(ttl=60).get` within its TTL (no request);
- `file-direct get`: the daemon killed, `Client.get` reading the file itself (the
  first read verifies the envelope; the next ones see the same file and reuse it);
- `envelope.read`: reading and verifying the envelope file, every time.

Prints the median, 10th and 90th percentiles in microseconds and each median's ratio to
the file read's. Needs the `tiercache` package (clients/python) installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tiercache import Client, envelope
from tiercache.testing import Daemon

REPOSITORY = Path(__file__).resolve().parents[1]


def document(size: int, seed: int) -> dict[str, object]:
    """Activities until the canonical JSON is about `size` bytes."""
    activities: list[dict[str, object]] = []
    doc: dict[str, object] = {"timestamp": "2026-12-07T10:00:00Z", "seed": seed, "activities": activities}
    i = 0
    while len(json.dumps(doc, separators=(",", ":"))) < size:
        activities.append(
            {
                "id": 12873649000 + i,
                "name": f"Run {i} along the canal",
                "type": "Run",
                "distance": 5012.3 + i,
                "moving_time": 1500 + i,
                "start_date": "2026-11-26T07:02:11Z",
            }
        )
        i += 1
    return doc


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(REPOSITORY / "target" / "release" / "tiercache"))
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=40)
    ap.add_argument("--size", type=int, default=10240)
    args = ap.parse_args()

    samples: dict[str, list[float]] = {}

    def timed(label: str, call: Callable[[], object], before: Callable[[], object] | None = None) -> None:
        into = samples.setdefault(label, [])
        for _ in range(args.per_round):
            if before is not None:
                before()
            started = time.perf_counter()
            call()
            into.append((time.perf_counter() - started) * 1e6)

    docs = [document(args.size, 0), document(args.size, 1)]
    with tempfile.TemporaryDirectory() as tmp, Daemon(args.binary, tables='[[caches]]\nname = "bench"\n') as daemon:
        plain = Path(tmp) / "strava_cache.json"
        plain.write_text(json.dumps(docs[0], indent=2))

        def read_plain() -> object:
            with plain.open() as f:
                return json.load(f)

        unix = Client(daemon.unix_url)
        tcp = Client(daemon.url)
        cached = Client(daemon.unix_url, ttl=60)
        writer = Client(daemon.unix_url)
        writer.save("bench", docs[0])
        body = len(daemon.cache_file("bench").read_bytes())
        flip = [0]

        def save_another() -> None:
            flip[0] ^= 1
            writer.save("bench", docs[flip[0]])

        for client in (unix, tcp, cached):
            client.get("bench")
        for _ in range(args.rounds):
            timed("file json.load", read_plain)
            timed("get unix 304", lambda: unix.get("bench"))
            timed("get tcp 304", lambda: tcp.get("bench"))
            timed("get ttl hit", lambda: cached.get("bench"))
            timed("envelope.read", lambda: envelope.read(daemon.data_dir, "bench"))
            timed("get unix first", lambda: unix.get("bench"), before=lambda: unix._core.forget("bench"))
            timed("get unix 200", lambda: unix.get("bench"), before=save_another)
            timed("get tcp 200", lambda: tcp.get("bench"), before=save_another)
        assert unix.get("bench").tier == "memory"

        daemon.kill()
        offline = Client(daemon.unix_url, data_dir=daemon.data_dir)
        assert offline.get("bench").tier == "file-direct"
        for _ in range(args.rounds):
            timed("file-direct get", lambda: offline.get("bench"))
            timed("file json.load", read_plain)
        for client in (unix, tcp, cached, writer, offline):
            client.close()

    base = statistics.median(samples["file json.load"])
    print(f"document: {len(json.dumps(docs[0], separators=(',', ':')))} bytes canonical, envelope {body} bytes")
    print(f"{args.rounds} rounds x {args.per_round} calls per variant; microseconds")
    print(f"{'variant':<18} {'median':>8} {'p10':>8} {'p90':>8} {'x file':>7}")
    for label, values in samples.items():
        median = statistics.median(values)
        print(
            f"{label:<18} {median:8.1f} {percentile(values, 0.1):8.1f} {percentile(values, 0.9):8.1f}"
            f" {median / base:7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
