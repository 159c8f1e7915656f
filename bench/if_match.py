#!/usr/bin/env python3
"""PUT latency with and without If-Match against a running tiercache (Postgres on).

    bench/if_match.py --url http://127.0.0.1:PORT --doc DOC.json [--puts 1000] [--rounds 5]

One keep-alive HTTP/1.1 connection, one request at a time. In interleaved rounds, --puts
PUTs of the document (made unique per request by a leading "n" key) to cache `plain`
without If-Match, then as many to cache `checked` with `If-Match` set to the ETag of the
previous answer (a client's read-modify-write without the read, so only the write is
timed). Prints "key value" lines: median and p99 in milliseconds per kind (the medians
over the rounds), and the If-Match PUTs refused (412: none expected, one client).
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import pathlib
import statistics
import sys
import time
import urllib.parse


def put(conn: http.client.HTTPConnection, cache: str, body: bytes, etag: str | None) -> tuple[float, int, str]:
    headers = {"Content-Type": "application/json"}
    if etag:
        headers["If-Match"] = etag
    started = time.perf_counter()
    conn.request("PUT", f"/v1/caches/{cache}", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    took = (time.perf_counter() - started) * 1000
    return took, response.status, response.getheader("ETag") or ""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--doc", required=True)
    parser.add_argument("--puts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    doc = pathlib.Path(args.doc).read_bytes()
    assert doc.startswith(b"{"), "the document must be a JSON object"
    n = 0

    def body() -> bytes:
        nonlocal n
        n += 1
        return b'{"n":%d,' % n + doc[1:]

    # Warm up both caches (and learn the checked cache's ETag).
    etag = ""
    for _ in range(50):
        put(conn, "plain", body(), None)
        _, _, etag = put(conn, "checked", body(), None)
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "if_match": []}
    refused = 0
    for _ in range(args.rounds):
        plain = []
        for _ in range(args.puts):
            took, status, _ = put(conn, "plain", body(), None)
            assert status == 200, status
            plain.append(took)
        checked = []
        for _ in range(args.puts):
            took, status, new_etag = put(conn, "checked", body(), etag)
            if status == 412:
                refused += 1
                continue
            assert status == 200, status
            etag = new_etag
            checked.append(took)
        results["plain"].append((statistics.median(plain), percentile(plain, 0.99)))
        results["if_match"].append((statistics.median(checked), percentile(checked, 0.99)))
    for kind, rounds in results.items():
        print(f"{kind}_median_ms {statistics.median(r[0] for r in rounds):.3f}")
        print(f"{kind}_p99_ms {statistics.median(r[1] for r in rounds):.3f}")
    print(f"if_match_refused {refused}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
