"""The daemon is down: `get` reads `data_dir/caches/NAME.json` itself, verified as the
daemon verifies it (tier `file-direct`), never writes there, and refuses a corrupt or
missing file with `Unavailable`."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import binary

from tiercache import Client, NotFound, Unavailable
from tiercache.testing import Daemon

CACHES = """
[[caches]]
name = "strava"
refresh_every = "6h"

[[caches]]
name = "fundraising"
refresh_every = "1s"

[[caches]]
name = "notes"

[[caches]]
name = "empty"
"""


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with Daemon(binary(), tables=CACHES) as d:
        yield d


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under `directory` with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_killed_daemon_is_read_from_its_files(daemon: Daemon) -> None:
    with Client(daemon.unix_url, data_dir=daemon.data_dir, timeout=2) as client:
        saved = client.save("strava", {"activities": [{"id": 7, "name": "Zürich 10 km 🏃", "distance": 10012.5}]})
        client.save("notes", {"text": "hello"})
        served = client.get("strava")
        assert served.tier == "memory"
        daemon.kill()
        before = snapshot(daemon.data_dir)

        doc = client.get("strava")
        assert doc.tier == "file-direct" and doc.stale is False
        assert (doc.data, doc.version, doc.etag) == (served.data, saved.version, saved.etag)
        assert doc.saved_at == saved.saved_at
        assert doc.last_fetch == saved.saved_at, "a PUT's fetch time is its save time"
        notes = client.get("notes")
        assert (notes.tier, notes.data, notes.stale) == ("file-direct", {"text": "hello"}, False)

        with pytest.raises(Unavailable) as missing:
            client.get("empty")
        assert (missing.value.code, missing.value.status) == ("no_file", None)
        with pytest.raises(NotFound):
            client.get("unconfigured")
        assert snapshot(daemon.data_dir) == before, "the client never writes into data_dir"

        # Back: the daemon answers again, and the client revalidates its kept copy.
        daemon.start()
        back = client.get("strava")
        assert back.tier in ("file", "memory") and back.data is served.data


def test_staleness_follows_the_caches_schedule(daemon: Daemon) -> None:
    with Client(daemon.url, data_dir=daemon.data_dir, timeout=2) as client:
        client.save("fundraising", {"total": 10})
        client.save("strava", {"activities": []})
        client.get("fundraising")  # reads the daemon's description: fundraising every 1 s
        daemon.stop()
        fundraising = client.get("fundraising")
        # Past one second without a refresh, the document is stale; strava (6 h) is not.
        deadline = time.monotonic() + 30
        while not fundraising.stale:
            assert time.monotonic() < deadline, "still fresh 30 s after a save with refresh_every = 1s"
            fundraising = client.get("fundraising")
        assert fundraising.tier == "file-direct"
        assert client.get("strava").stale is False
    # A schedule given to the client wins over the daemon's.
    with Client(daemon.url, data_dir=daemon.data_dir, refresh_every={"strava": 0.0}, timeout=2) as client:
        assert client.get("strava").stale is True


def test_a_corrupt_file_is_refused_as_the_daemon_refuses_it(daemon: Daemon) -> None:
    with Client(daemon.url, data_dir=daemon.data_dir, timeout=2) as client:
        client.save("notes", {"total": 12345})
        daemon.kill()
        path = daemon.cache_file("notes")
        good = path.read_bytes()
        path.write_bytes(good.replace(b"12345", b"12346"))
        with pytest.raises(Unavailable) as caught:
            client.get("notes")
        assert caught.value.code == "file_corrupt" and "checksum mismatch" in caught.value.message

        # The daemon refuses it too: never served, moved to data_dir/corrupt/.
        daemon.start()
        with pytest.raises(Unavailable) as served:
            client.get("notes")
        assert served.value.status == 503
        assert not path.exists() and any((daemon.data_dir / "corrupt").iterdir())


def test_without_a_data_dir_or_with_an_empty_one(daemon: Daemon, tmp_path: Path) -> None:
    daemon.stop()
    with Client(daemon.url, timeout=2) as client, pytest.raises(Unavailable) as caught:
        client.get("notes")
    assert caught.value.code == "unreachable"
    with Client(daemon.url, data_dir=tmp_path / "nowhere", timeout=2) as client, pytest.raises(Unavailable) as caught:
        client.get("notes")
    assert caught.value.code == "no_file"


def test_a_hung_daemon_costs_one_timeout_then_the_files_answer(daemon: Daemon) -> None:
    with Client(daemon.unix_url, data_dir=daemon.data_dir, timeout=0.5) as client:
        client.save("notes", {"hung": False})
        os.kill(daemon.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            first = client.get("notes")
            assert first.tier == "file-direct" and first.data == {"hung": False}
            assert time.monotonic() - started >= 0.5, "the first read waited for the timeout"
            started = time.monotonic()
            for _ in range(20):
                assert client.get("notes").tier == "file-direct"
            assert time.monotonic() - started < 0.5, "the next reads did not wait again"
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        # Past the hold, the daemon is asked again.
        deadline = time.monotonic() + 30
        while client.get("notes").tier == "file-direct":
            assert time.monotonic() < deadline, "the daemon was not asked again after the hold"
            time.sleep(0.1)
