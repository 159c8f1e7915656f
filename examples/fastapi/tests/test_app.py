"""The example app through FastAPI's own test client, against the real daemon: the old
app's files imported, every route, and the daemon killed with -9 and back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from conftest import CACHES, OLD_CACHE, binary
from fastapi.testclient import TestClient
from tiercache.testing import Daemon

from fundraising_app.main import create_app


@pytest.fixture
def app(daemon: Daemon) -> Iterator[TestClient]:
    with TestClient(create_app(daemon.unix_url, data_dir=daemon.data_dir)) as client:
        yield client


def old_activities() -> list[dict[str, object]]:
    document = json.loads((OLD_CACHE / "strava_cache.json").read_text(encoding="utf-8"))
    activities: list[dict[str, object]] = document["activities"]
    return activities


def test_the_imported_files_are_served(app: TestClient) -> None:
    answer = app.get("/activities")
    assert answer.status_code == 200
    body = answer.json()
    assert body["activities"] == old_activities()
    assert body["tier"] in ("file", "memory") and body["stale"] is False

    stats = app.get("/stats").json()
    assert (stats["activities"], stats["distance_km"]) == (3, 97.47)

    totals = app.get("/fundraising").json()
    assert (totals["raised"], totals["target"], totals["percent"]) == ("1234.56", "2500.00", "49.4")

    health = app.get("/health")
    assert health.status_code == 200
    assert health.json()["daemon"] == "up"
    assert {c["tier"] for c in health.json()["caches"].values()} == {"memory"}


def test_the_app_keeps_answering_through_a_kill_9(daemon: Daemon, app: TestClient) -> None:
    before = app.get("/activities").json()
    assert app.get("/health").json()["caches"]["strava"]["tier"] == "memory"

    daemon.kill()
    during = app.get("/activities")
    assert during.status_code == 200
    assert during.json()["activities"] == before["activities"]
    assert during.json()["tier"] == "file-direct"
    assert app.get("/fundraising").json()["raised"] == "1234.56"
    health = app.get("/health")
    assert health.status_code == 200
    assert health.json()["daemon"] == "down"
    assert {c["tier"] for c in health.json()["caches"].values()} == {"file-direct"}

    daemon.start()
    # Back: the first read loads the file into the daemon's memory, the next comes from it.
    deadline = time.monotonic() + 30
    while (tiers := {c["tier"] for c in app.get("/health").json()["caches"].values()}) != {"memory"}:
        assert tiers <= {"file", "memory"}, tiers
        assert time.monotonic() < deadline, "not back on memory 30 s after the restart"
    assert app.get("/activities").json()["activities"] == before["activities"]


def test_a_cache_without_data_is_a_clear_503() -> None:
    with Daemon(binary(), tables=CACHES) as daemon, TestClient(create_app(daemon.url)) as app:
        answer = app.get("/fundraising")
        assert answer.status_code == 503
        assert answer.json()["code"] == "no_data"
        health = app.get("/health")
        assert health.status_code == 200, "no data yet is not a failure"
        assert health.json()["caches"]["fundraising"] == {"tier": None, "error": "no_data"}
