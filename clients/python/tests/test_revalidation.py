"""Reuse without re-reading: the second `get` of unchanged data is a 304 (the daemon's
metrics say so), a changed document comes back whole, and the in-process TTL skips the
request altogether."""

from __future__ import annotations

import time

from conftest import WRITE_TOKEN

from tiercache import Client
from tiercache.testing import Daemon


def counters(daemon: Daemon, cache: str) -> tuple[float, float]:
    """(reads answered, reads answered 304) of `cache`, every tier summed."""
    reads = 0.0
    for line in daemon.metrics().splitlines():
        if line.startswith("tiercache_reads_total{") and f'cache="{cache}"' in line:
            reads += float(line.rsplit(" ", 1)[1])
    not_modified = daemon.metric(f'tiercache_reads_not_modified_total{{cache="{cache}"}}')
    assert not_modified is not None, "the daemon counts 304s"
    return reads, not_modified


def test_unchanged_data_is_revalidated_with_a_304(daemon: Daemon, url: str) -> None:
    with Client(url, token=WRITE_TOKEN) as client:
        client.save("scratch", {"runs": list(range(100))})
        before = counters(daemon, "scratch")
        first = client.get("scratch")
        assert counters(daemon, "scratch") == (before[0] + 1, before[1]), "the first get downloads"
        second = client.get("scratch")
        third = client.get("scratch")
        assert counters(daemon, "scratch") == (before[0] + 3, before[1] + 2), "then 304s"
        assert second.data is first.data and third.data is first.data, "nothing parsed again"
        assert (second.version, second.etag, second.tier) == (first.version, first.etag, "memory")

        # Another writer changes it: the next get downloads the new version.
        with Client(url, token=WRITE_TOKEN) as other:
            changed = other.save("scratch", {"runs": [1]})
        fresh = client.get("scratch")
        assert (fresh.data, fresh.version) == ({"runs": [1]}, changed.version)
        assert counters(daemon, "scratch") == (before[0] + 4, before[1] + 2)


def test_a_save_through_the_client_forgets_the_kept_document(daemon: Daemon) -> None:
    with Client(daemon.url, token=WRITE_TOKEN) as client:
        client.save("scratch", {"v": 1})
        client.get("scratch")
        client.save("scratch", {"v": 2})
        assert client.get("scratch").data == {"v": 2}


def test_the_in_process_ttl_skips_the_request(daemon: Daemon) -> None:
    with Client(daemon.url, token=WRITE_TOKEN, ttl=0.5) as client:
        client.save("scratch", {"ttl": True})
        first = client.get("scratch")
        before = counters(daemon, "scratch")
        for _ in range(5):
            assert client.get("scratch") is first
        assert counters(daemon, "scratch") == before, "no request within the TTL"
        time.sleep(0.6)
        assert client.get("scratch").data is first.data
        assert counters(daemon, "scratch") == (before[0] + 1, before[1] + 1), "past it: one 304"
