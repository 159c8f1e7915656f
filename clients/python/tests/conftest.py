"""Fixtures: the real daemon (`tiercache.testing.Daemon`) with read and write tokens,
listening on TCP and on a unix socket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tiercache.testing import Daemon

#: The repository's checkout, for the binary and the fixtures.
REPOSITORY = Path(__file__).resolve().parents[3]


def binary() -> Path:
    """`$TIERCACHE_BIN`, else the debug build that `cargo test` leaves."""
    path = Path(os.environ.get("TIERCACHE_BIN") or REPOSITORY / "target" / "debug" / "tiercache")
    if not path.exists():
        pytest.fail(f"no tiercache binary at {path}: run `cargo build` or set TIERCACHE_BIN")
    return path


READ_TOKEN = "rd-" + "a1" * 12
WRITE_TOKEN = "wr-" + "b2" * 12

#: A schema for `fundraising`: an object whose `total` is a non-negative number.
TOTALS_SCHEMA = '{"type": "object", "required": ["total"], "properties": {"total": {"type": "number", "minimum": 0}}}'

CACHES = """
[[caches]]
name = "strava"
refresh_every = "6h"

[[caches]]
name = "fundraising"
schema = "totals.json"

[[caches]]
name = "small"
max_size = "1KiB"

[[caches]]
name = "broken"
[caches.source]
kind = "command"
argv = ["false"]

[[caches]]
name = "fetched"
[caches.source]
kind = "command"
argv = ["echo", "{\\"fetched\\": true}"]

[[caches]]
name = "scratch"
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """One daemon per test module: tokens, TCP and unix socket, the caches of `CACHES`."""
    with Daemon(
        binary(),
        tables=CACHES,
        tokens={"read": READ_TOKEN, "write": WRITE_TOKEN},
        files={"totals.json": TOTALS_SCHEMA},
    ) as d:
        yield d


@pytest.fixture(params=["tcp", "unix"])
def url(request: pytest.FixtureRequest, daemon: Daemon) -> str:
    """The daemon's address, over TCP and over the unix socket."""
    return daemon.url if request.param == "tcp" else daemon.unix_url
