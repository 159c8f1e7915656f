"""`tiercache.compat.SupabaseCacheManager` returns the shapes the old app's manager
returned, configured by TIERCACHE_URL / TIERCACHE_TOKEN / TIERCACHE_DATA_DIR."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from conftest import READ_TOKEN, WRITE_TOKEN, binary

from tiercache import Client
from tiercache.compat import SupabaseCacheManager
from tiercache.testing import Daemon


@pytest.fixture
def env(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_URL", daemon.unix_url)
    monkeypatch.setenv("TIERCACHE_TOKEN", WRITE_TOKEN)
    monkeypatch.setenv("TIERCACHE_DATA_DIR", str(daemon.data_dir))
    monkeypatch.delenv("STRAVA_CACHE_HOURS", raising=False)


@pytest.mark.usefixtures("env")
def test_the_old_shapes() -> None:
    manager = SupabaseCacheManager()
    assert manager.enabled is True
    data = {"timestamp": "2026-11-26T10:00:00Z", "activities": [{"id": 1, "distance": 5012.3}]}
    assert manager.save_cache("strava", data, last_fetch=datetime.now(timezone.utc), project_id="ignored") is True

    cached = manager.get_cache("strava")
    assert cached is not None
    assert set(cached) == {"data", "last_fetch", "last_rich_fetch"}
    assert cached["data"] == data
    assert isinstance(cached["last_fetch"], str) and cached["last_rich_fetch"] is None
    fetched = datetime.fromisoformat(cached["last_fetch"])
    assert abs(fetched - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert manager.get_last_fetch_time("strava") == fetched
    # The caller's copy is its own.
    cached["data"]["activities"].clear()
    again = manager.get_cache("strava", project_id="ignored")
    assert again is not None and again["data"] == data


@pytest.mark.usefixtures("env")
def test_failures_are_none_and_false_never_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    manager = SupabaseCacheManager()
    caplog.set_level(logging.WARNING, logger="tiercache.compat")
    assert manager.get_cache("no-such-cache") is None
    assert manager.get_last_fetch_time("no-such-cache") is None
    assert manager.save_cache("fundraising", {"total": -1}) is False, "refused by the cache's schema"
    assert any("schema" in r.getMessage() for r in caplog.records)


def test_a_read_token_reads_but_cannot_save(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_URL", daemon.url)
    monkeypatch.setenv("TIERCACHE_TOKEN", READ_TOKEN)
    monkeypatch.delenv("TIERCACHE_DATA_DIR", raising=False)
    with Client(daemon.url, token=WRITE_TOKEN) as writer:
        writer.save("scratch", {"a": 1})
    manager = SupabaseCacheManager()
    assert manager.save_cache("scratch", {"a": 2}) is False
    cached = manager.get_cache("scratch")
    assert cached is not None and cached["data"] == {"a": 1}


def test_the_daemon_down_reads_from_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    with Daemon(binary(), tables='[[caches]]\nname = "strava"\nrefresh_every = "6h"\n') as daemon:
        monkeypatch.setenv("TIERCACHE_URL", daemon.url)
        monkeypatch.delenv("TIERCACHE_TOKEN", raising=False)
        monkeypatch.setenv("TIERCACHE_DATA_DIR", str(daemon.data_dir))
        monkeypatch.setenv("STRAVA_CACHE_HOURS", "6")
        manager = SupabaseCacheManager()
        assert manager.save_cache("strava", {"activities": [{"id": 9}]})
        online = manager.get_cache("strava")
        daemon.kill()
        offline = manager.get_cache("strava")
        assert offline == online, "the same shape and values from the file"
        assert manager.client.get("strava").tier == "file-direct"
        assert manager.save_cache("strava", {"activities": []}) is False, "saves need the daemon"
