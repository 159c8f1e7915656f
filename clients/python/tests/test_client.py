"""Every operation and every error type of `Client` and `AsyncClient`, against the real
daemon, over TCP and over a unix socket, with tokens."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import READ_TOKEN, WRITE_TOKEN, binary

import tiercache
from tiercache import (
    AsyncClient,
    Client,
    Conflict,
    Error,
    Forbidden,
    Invalid,
    NoData,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from tiercache.testing import Daemon


def test_save_get_meta_list_delete(url: str) -> None:
    with Client(url, token=WRITE_TOKEN) as client:
        saved = client.save(
            "strava", {"timestamp": "2026-11-26T10:00:00Z", "activities": [{"id": 1, "distance": 5012.3}]}
        )
        assert saved.name == "strava"
        assert saved.checksum.startswith("sha256:") and len(saved.checksum) == 71
        assert saved.etag == f'"{saved.version}-{saved.checksum[7:23]}"'
        assert abs(saved.saved_at - datetime.now(timezone.utc)) < timedelta(minutes=1)

        doc = client.get("strava")
        assert doc.data == {"activities": [{"distance": 5012.3, "id": 1}], "timestamp": "2026-11-26T10:00:00Z"}
        assert (doc.version, doc.etag) == (saved.version, saved.etag)
        assert doc.tier == "memory" and doc.stale is False
        assert doc.last_fetch is not None and abs(doc.last_fetch - saved.saved_at) < timedelta(seconds=2)

        meta = client.meta("strava")
        assert (meta.name, meta.version, meta.checksum) == ("strava", saved.version, saved.checksum)
        assert meta.saved_at == saved.saved_at
        assert meta.next_refresh_at is not None and meta.stale is False
        assert meta.postgres_synced is None, "no Postgres here"
        assert meta.deauthorized is False
        assert meta.raw["name"] == "strava"

        names = [m.name for m in client.list()]
        assert names == sorted(names) and {"strava", "fundraising", "scratch"} <= set(names)

        client.delete("strava")
        with pytest.raises(NoData) as caught:
            client.get("strava")
        assert (caught.value.status, caught.value.code) == (503, "no_data")
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        assert isinstance(caught.value, Unavailable), "NoData is a kind of Unavailable"
        assert client.meta("strava").version is None


def test_refresh_and_status(url: str) -> None:
    with Client(url, token=WRITE_TOKEN) as client:
        client.refresh("fetched", full=True)
        client.refresh("fetched")
        status = client.status()
        assert status.ready is True
        assert status.retry_queue is None, "no Postgres here"
        assert "fetched" in {m.name for m in status.caches}
        with pytest.raises(Conflict) as caught:
            client.refresh("scratch")
        assert (caught.value.status, caught.value.code) == (409, "no_source")


def test_conditional_save(url: str) -> None:
    with Client(url, token=WRITE_TOKEN) as client:
        first = client.save("scratch", {"n": 1})
        doc = client.get("scratch")
        second = client.save("scratch", {"n": 2}, if_match=doc)
        assert second.version > first.version
        with pytest.raises(Conflict) as caught:
            client.save("scratch", {"n": 3}, if_match=first.etag)
        assert (caught.value.status, caught.value.code) == (412, "precondition_failed")
        assert client.get("scratch").data == {"n": 2}, "a refused save changes nothing"
        assert client.save("scratch", {"n": 4}, if_match="*").version > second.version


def test_errors_of_the_document(url: str) -> None:
    with Client(url, token=WRITE_TOKEN) as client:
        with pytest.raises(Invalid) as invalid:
            client.save("fundraising", {"total": -5})
        assert (invalid.value.status, invalid.value.code) == (422, "schema_mismatch")
        assert invalid.value.errors and invalid.value.errors[0].startswith("/total")
        with pytest.raises(Invalid) as not_json:
            client.save("fundraising", {"total": float("nan")})
        assert not_json.value.status is None, "refused before sending"
        assert client.save("fundraising", {"total": 12.5}).version >= 1

        with pytest.raises(TooLarge) as large:
            client.save("small", {"text": "x" * 2000})
        assert (large.value.status, large.value.code) == (413, "too_large")

        with pytest.raises(NotFound) as unknown:
            client.get("nonexistent")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_cache")
        for bad in ("../metrics", "Strava", "a?b", ""):
            with pytest.raises(NotFound):
                client.get(bad)

        with pytest.raises(Unavailable) as broken:
            client.get("broken")
        assert broken.value.status == 503 and broken.value.code == "refresh_failed"
        assert not isinstance(broken.value, NoData)


def test_tokens(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERCACHE_TOKEN", raising=False)
    with Client(url) as anonymous, pytest.raises(Unauthorized) as caught:
        anonymous.get("fundraising")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    with Client(url, token="not-a-token") as wrong, pytest.raises(Unauthorized) as caught:
        wrong.meta("fundraising")
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    with Client(url, token=READ_TOKEN) as reader:
        reader.list()
        with pytest.raises(Forbidden) as forbidden:
            reader.save("scratch", {"n": 0})
        assert (forbidden.value.status, forbidden.value.code) == (403, "insufficient_scope")
        assert isinstance(forbidden.value, Unauthorized)

    token_file = tmp_path / "token"
    token_file.write_text(WRITE_TOKEN + "\n")
    with Client(url, token_file=token_file) as from_file:
        from_file.save("scratch", {"from": "file"})
    monkeypatch.setenv("TIERCACHE_TOKEN", WRITE_TOKEN)
    with Client(url) as from_env:
        from_env.save("scratch", {"from": "env"})
    with Client(url, token=READ_TOKEN) as argument_wins, pytest.raises(Forbidden):
        argument_wins.save("scratch", {"n": 0})
    with pytest.raises(ValueError, match="token"):
        Client(url, token="two words")


def test_addresses() -> None:
    with pytest.raises(ValueError, match="unix"):
        Client("unix:")
    with pytest.raises(ValueError, match="HOST:PORT"):
        Client("ftp://example.com")
    with pytest.raises(ValueError, match="port"):
        Client("localhost")


def test_listen_form_and_rate_limit() -> None:
    with Daemon(binary(), api="rate_limit_per_second = 1\nrate_limit_burst = 1", tables=CACHES_ONE) as d:
        host_port = d.url.removeprefix("http://")
        with Client(host_port) as client:
            client.save("one", [1])

            def reads() -> None:
                for _ in range(5):
                    client.get("one")

            with pytest.raises(RateLimited) as caught:
                reads()
            assert (caught.value.status, caught.value.code) == (429, "too_many_requests")
            assert caught.value.retry_after is not None and caught.value.retry_after >= 0


CACHES_ONE = '[[caches]]\nname = "one"\n'


def test_unreachable_without_data_dir(daemon: Daemon) -> None:
    gone = Daemon(binary(), tables=CACHES_ONE, start=False)
    with gone, Client(gone.unix_url, timeout=2) as client:
        with pytest.raises(Unavailable) as caught:
            client.get("one")
        assert caught.value.status is None and caught.value.code == "unreachable"
        for call in (lambda: client.save("one", 1), lambda: client.meta("one"), client.status):
            with pytest.raises(Unavailable):
                call()


def test_async_client(url: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(url, token=WRITE_TOKEN) as client:
            saved = await client.save("scratch", {"async": [1, 2.5, "x"]})
            first = await client.get("scratch")
            again = await client.get("scratch")
            assert first.data == {"async": [1, 2.5, "x"]} and first.version == saved.version
            assert again.data is first.data, "revalidated: the same data, not parsed again"
            assert (await client.meta("scratch")).version == saved.version
            assert "scratch" in {m.name for m in await client.list()}
            assert (await client.status()).ready
            await client.refresh("fetched")
            with pytest.raises(Conflict):
                await client.save("scratch", {}, if_match='"1-0000000000000000"')
            with pytest.raises(Invalid):
                await client.save("fundraising", None)
            with pytest.raises(NotFound):
                await client.meta("nope")
            await client.delete("scratch")
            with pytest.raises(NoData):
                await client.get("scratch")
        async with AsyncClient(url, token=READ_TOKEN) as reader:
            with pytest.raises(Forbidden):
                await reader.delete("scratch")

    asyncio.run(scenario())


def test_every_error_is_a_tiercache_error() -> None:
    for kind in (Conflict, Forbidden, Invalid, NoData, NotFound, RateLimited, TooLarge, Unauthorized, Unavailable):
        assert issubclass(kind, Error)
        assert getattr(tiercache, kind.__name__) is kind
