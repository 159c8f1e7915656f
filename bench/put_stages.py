#!/usr/bin/env python3
"""Where each PUT's time goes, from `strace -f -ttt -T` of the daemon (bench/put_profile.sh).

Per PUT, in the order the syscalls happen: the request read (a worker's `recvfrom` of
`PUT `), the temporary file created (the file tier's `openat` of `*.json.tmp`), its
rename and the directory's `fsync` that follows, the answer written (a worker's `sendto`
of `HTTP/1.1 200`). Prints the median and mean of each stage in between.
"""

from __future__ import annotations

import itertools
import re
import statistics
import sys
from dataclasses import dataclass, field

LINE = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*(\d+\.\d+)\s+(.*)$")
DURATION = re.compile(r"<(\d+\.\d+)>\s*$")


@dataclass(order=True)
class Call:
    """One syscall: when it started and ended, on which thread, what it was."""

    start: float
    end: float
    pid: str
    name: str
    text: str


@dataclass
class Put:
    """The moments of one PUT, filled in as its syscalls are met."""

    times: dict[str, float] = field(default_factory=dict)


def calls(path: str) -> list[Call]:
    """Every complete syscall of the trace, an interrupted one joined with its resumption."""
    pending: dict[str, tuple[float, str]] = {}
    found: list[Call] = []
    with open(path, errors="replace") as trace:
        for raw in trace:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, ts, rest = m.group(1) or "0", float(m.group(2)), m.group(3)
            d = DURATION.search(rest)
            took = float(d.group(1)) if d else 0.0
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (ts, rest)
                continue
            if rest.startswith("<..."):
                ts, first = pending.pop(pid, (ts - took, rest))
                rest = first + rest
            found.append(Call(ts, ts + took, pid, rest.split("(", 1)[0], rest))
    return sorted(found)


def puts(trace: list[Call]) -> list[Put]:
    """The PUTs whose every stage is in the trace."""
    done: list[Put] = []
    cur: Put | None = None
    for c in trace:
        if c.name in ("recvfrom", "read") and '"PUT ' in c.text:
            cur = Put({"recv": c.end})
        elif cur is None:
            continue
        elif c.name == "openat" and ".json.tmp" in c.text and "open" not in cur.times:
            cur.times["open"] = c.start
        elif c.name == "rename" and "open" in cur.times:
            cur.times["rename"] = c.end
        elif c.name == "fsync" and "rename" in cur.times and "syncdir" not in cur.times:
            cur.times["syncdir"] = c.end
        elif c.name in ("sendto", "writev", "write") and "HTTP/1.1 200" in c.text and "syncdir" in cur.times:
            cur.times["send"] = c.start
            done.append(cur)
            cur = None
    return done


def stage(label: str, values: list[float]) -> None:
    """One line: the median and mean of `values` (seconds) in milliseconds."""
    median, mean = statistics.median(values) * 1e3, statistics.mean(values) * 1e3
    print(f"  {label:<66} median {median:7.3f} ms, mean {mean:7.3f} ms")


def main() -> None:
    """Prints the stages of the PUTs in the trace named on the command line."""
    found = puts(calls(sys.argv[1]))
    print(f"  {len(found)} PUTs")
    if len(found) < 2:
        return
    t = [p.times for p in found]
    stage("request read -> temp file created (admission, hop to the file tier)", [p["open"] - p["recv"] for p in t])
    stage("temp file created -> directory fsync done (the durable write)", [p["syncdir"] - p["open"] for p in t])
    stage("directory fsync done -> answer written (back, memory, answer)", [p["send"] - p["syncdir"] for p in t])
    stage("request read -> answer written (the daemon's whole part)", [p["send"] - p["recv"] for p in t])
    gaps = [b["recv"] - a["send"] for a, b in itertools.pairwise(t)]
    stage("answer written -> next request read (the client, loopback)", gaps)


if __name__ == "__main__":
    main()
