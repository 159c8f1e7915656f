#!/usr/bin/env python3
"""One simulated day of a Strava athlete: polling versus webhooks.

    bench/webhooks.py [--bin target/release/tiercache] [--hour-seconds 2]

An athlete with 2,000 activities uploads 3 activities and edits 2 older ones during one
day, against a fake Strava on loopback (tokens, the paged activity list with `after=`,
activity detail, the athlete). The day is compressed: one simulated hour lasts
--hour-seconds real seconds, and so do the daemon's schedules (a whole read of 2,000
activities takes real time too, which the compression magnifies: use a release build and
a generous --hour-seconds). Three runs of the real binary:

  poll-15m      refresh_every 15 min, every refresh a full read (before webhooks)
  poll-6h       refresh_every 6 h, every refresh a full read (the default schedule)
  webhooks      refresh_every 6 h, incremental reads, a full read daily, and each change
                pushed as Strava's webhook event at the moment it happens

For each: the upstream calls during the day (after the initial fill) and the freshness
lag of each change, from the change upstream to the daemon serving it. Polling lags are
scaled back to simulated time; webhook lags are real time (Strava pushes within seconds
in reality too). Prints a table. Standard library only; not a timed test.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

Activity = dict[str, Any]
#: (kind, activity id, seconds from the change to the daemon serving it; None: never)
Lag = tuple[str, int, float | None]

ATHLETE = 134815
VERIFY = "bench-verify-token"
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Simulated hour of each change: (hour, kind, activity id).
CHANGES = [
    (7.5, "create", 2001),
    (9.3, "update", 1500),
    (12.2, "create", 2002),
    (18.75, "create", 2003),
    (20.1, "update", 700),
]


def start_of(i: int) -> str:
    return (EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(i: int, name: str | None = None) -> Activity:
    return {
        "id": i,
        "name": name or f"Run {i}",
        "start_date": start_of(i),
        "distance": 5012.3,
        "resource_state": 2,
        "type": "Run",
    }


class FakeStrava:
    """Activities newest first; counts every request it answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.activities = [summary(i) for i in range(2000, 0, -1)]
        self.calls = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.calls += 1
                self.answer(
                    200,
                    {
                        "access_token": "a",
                        "refresh_token": "r",
                        "expires_in": 21600,
                        "expires_at": int(time.time()) + 21600,
                    },
                )

            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                with fake.lock:
                    fake.calls += 1
                    items = list(fake.activities)
                if url.path == "/api/v3/athlete":
                    self.answer(200, {"id": ATHLETE})
                    return
                if url.path.startswith("/api/v3/activities/"):
                    wanted = int(url.path.rsplit("/", 1)[1])
                    found = [a for a in items if a["id"] == wanted]
                    if found:
                        self.answer(200, found[0])
                    else:
                        self.answer(404, {"message": "Not Found"})
                    return
                if "after" in q:
                    after = int(q["after"])
                    items = [
                        a
                        for a in items
                        if datetime.strptime(a["start_date"], "%Y-%m-%dT%H:%M:%SZ")
                        .replace(tzinfo=timezone.utc)
                        .timestamp()
                        > after
                    ][::-1]
                page, per_page = int(q.get("page", 1)), int(q.get("per_page", 30))
                self.answer(200, items[(page - 1) * per_page : page * per_page])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def apply(self, kind: str, i: int) -> None:
        with self.lock:
            if kind == "create":
                self.activities.insert(0, summary(i))
            else:
                for a in self.activities:
                    if a["id"] == i:
                        a["name"] = f"Run {i} (edited)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dur(hours: float, hour_seconds: float) -> str:
    return f"{max(1, round(hours * hour_seconds * 1000))}ms"


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def visible(doc: dict[str, Any], kind: str, i: int) -> bool:
    for a in doc.get("activities", []):
        if a.get("id") == i:
            return kind == "create" or str(a.get("name", "")).endswith("(edited)")
    return False


def run(
    name: str, binary: str, hour_seconds: float, every_h: float, full_h: float, webhooks: bool
) -> tuple[int, list[Lag]]:
    fake = FakeStrava()
    work = tempfile.mkdtemp(prefix=f"tiercache-bench-{name}-")
    port = free_port()
    config = (
        f'data_dir = "data"\n[log]\nlevel = "warn"\n[api]\nlisten = ["127.0.0.1:{port}"]\n'
        + (f'[webhooks]\nstrava_verify_token = "{VERIFY}"\n' if webhooks else "")
        + f'[[caches]]\nname = "strava"\nrefresh_every = "{dur(every_h, hour_seconds)}"\n'
        + '[caches.source]\nkind = "strava"\nclient_id = "1"\nclient_secret = "s"\n'
        + f'refresh_token = "r"\nbase_url = "{fake.url}"\nper_page = 200\n'
        + f'full_refresh_every = "{dur(full_h, hour_seconds)}"\n'
    )
    with open(os.path.join(work, "tiercache.toml"), "w") as f:
        f.write(config)
    daemon = subprocess.Popen(
        [os.path.abspath(binary), "run", "--config", "tiercache.toml"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = request(port, "GET", "/v1/caches/strava")
                if status == 200 and len(json.loads(body)["activities"]) == 2000:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"bench: {name}: the daemon did not fill the cache")
            time.sleep(0.05)
        with fake.lock:
            fake.calls = 0
        start = time.monotonic()
        lags: list[Lag] = []
        pending: list[tuple[str, int, float]] = []
        for hour, kind, i in CHANGES:
            while True:
                now = time.monotonic()
                if now >= start + hour * hour_seconds:
                    break
                check(port, pending, lags, now)
                time.sleep(0.02)
            fake.apply(kind, i)
            changed = time.monotonic()
            if webhooks:
                event = {
                    "object_type": "activity",
                    "object_id": i,
                    "aspect_type": kind,
                    "owner_id": ATHLETE,
                    "subscription_id": 1,
                    "event_time": int(time.time()),
                    "updates": {},
                }
                request(port, "POST", "/v1/webhooks/strava", json.dumps(event).encode())
            pending.append((kind, i, changed))
        while time.monotonic() < start + 24 * hour_seconds:
            check(port, pending, lags, time.monotonic())
            time.sleep(0.02)
        with fake.lock:
            calls = fake.calls
        # A change late in the day is served by the next day's first poll: keep watching
        # (its calls belong to the next day).
        while pending and time.monotonic() < start + (24 + every_h + 1) * hour_seconds:
            check(port, pending, lags, time.monotonic())
            time.sleep(0.02)
        for kind, i, _ in pending:
            lags.append((kind, i, None))
        return calls, lags
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        fake.server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def check(port: int, pending: list[tuple[str, int, float]], lags: list[Lag], now: float) -> None:
    if not pending:
        return
    status, body = request(port, "GET", "/v1/caches/strava")
    if status != 200:
        return
    doc = json.loads(body)
    for item in list(pending):
        kind, i, changed = item
        if visible(doc, kind, i):
            lags.append((kind, i, now - changed))
            pending.remove(item)


def show(seconds: float | None) -> str:
    if seconds is None:
        return "not served"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_bin = "target/release/tiercache" if os.path.exists("target/release/tiercache") else "target/debug/tiercache"
    parser.add_argument("--bin", default=default_bin)
    parser.add_argument("--hour-seconds", type=float, default=6.0, help="real seconds per simulated hour")
    args = parser.parse_args()
    scale = 3600 / args.hour_seconds
    runs = [("poll-15m", 0.25, 0.25, False), ("poll-6h", 6, 6, False), ("webhooks", 6, 24, True)]
    rows: list[tuple[str, int, list[Lag]]] = []
    for name, every, full, webhooks in runs:
        print(f"== {name}: one day in {24 * args.hour_seconds:.0f} s", file=sys.stderr)
        calls, lags = run(name, args.bin, args.hour_seconds, every, full, webhooks)
        # Polling lags are in compressed time; a webhook's lag is real time.
        lags = [(k, i, None if lag is None else (lag if webhooks else lag * scale)) for k, i, lag in lags]
        rows.append((name, calls, lags))
    base = rows[0][1]
    print(
        f"{'mode':<10} {'upstream calls/day':>18} {'vs poll-15m':>12} {'worst lag':>12}"
        "  lag per change (event to served)"
    )
    for name, calls, lags in rows:
        known = [lag for _, _, lag in lags if lag is not None]
        worst = show(max(known)) if len(known) == len(lags) else "not served"
        detail = ", ".join(f"{k} {i}: {show(lag)}" for k, i, lag in lags)
        factor = f"{base / calls:.1f}x fewer" if calls and name != "poll-15m" else "-"
        print(f"{name:<10} {calls:>18} {factor:>12} {worst:>12}  {detail}")


if __name__ == "__main__":
    main()
