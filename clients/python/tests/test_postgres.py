"""The client against a daemon with a real Postgres: the retry queue in `status`,
`postgres_synced` in `meta`, and a document that outlives its lost file."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import REPOSITORY, binary
from pg import Cluster

from tiercache import Client, Unavailable
from tiercache.testing import Daemon


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as pg:
        pg.psql("postgres", "CREATE DATABASE app")
        pg.psql("app", (REPOSITORY / "schema.sql").read_text())
        yield pg


def test_saves_reach_postgres_and_come_back_after_a_lost_file(cluster: Cluster) -> None:
    url = cluster.url("app")
    tables = (
        f'[postgres]\nenabled = true\nurl = "{url}"\nconnect_timeout = "3s"\n\n'
        '[retry]\ninitial_interval = "100ms"\nmax_interval = "1s"\n\n'
        '[[caches]]\nname = "strava"\nrefresh_every = "6h"\n'
    )
    daemon = Daemon(binary(), top='project = "pyclient"', tables=tables)
    with daemon, Client(daemon.unix_url, data_dir=daemon.data_dir, timeout=5) as client:
        saved = client.save("strava", {"activities": [{"id": 1, "distance": 5012.3}]})
        status = client.status()
        assert status.retry_queue is not None and status.retry_queue.enabled
        deadline = time.monotonic() + 30
        while client.meta("strava").postgres_synced is not True:
            assert time.monotonic() < deadline, "the save did not reach Postgres in 30 s"
            time.sleep(0.05)
        row = cluster.psql("app", "SELECT version FROM cache_storage WHERE cache_type = 'strava'")
        assert row == str(saved.version)

        # Killed, and its file lost: the client has nothing to read meanwhile...
        daemon.kill()
        daemon.cache_file("strava").unlink()
        with pytest.raises(Unavailable) as caught:
            client.get("strava")
        assert caught.value.code == "no_file"
        # ...and once the daemon is back, Postgres has given the document back.
        daemon.start()
        doc = client.get("strava")
        assert (doc.version, doc.data) == (saved.version, {"activities": [{"distance": 5012.3, "id": 1}]})
        assert client.meta("strava").postgres_synced is True
