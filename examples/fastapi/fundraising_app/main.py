"""The app: routes over `SmartStravaCache` and `FundraisingTotals`, one `AsyncClient`.

    TIERCACHE_URL=unix:/run/tiercache/api.sock TIERCACHE_DATA_DIR=/var/lib/tiercache/data \\
        uvicorn fundraising_app.main:app

Configured like `tiercache.compat`: `TIERCACHE_URL` (default `http://127.0.0.1:8077`),
`TIERCACHE_TOKEN` (a read token is enough) and `TIERCACHE_DATA_DIR` (the daemon's
`data_dir`, read-only, for reads while the daemon is down).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tiercache import AsyncClient, Error, NoData, NotFound

from .fundraising import FundraisingTotals
from .strava import SmartStravaCache

CACHES = ("strava", "fundraising")


def _error(e: Error) -> JSONResponse:
    """An error of the cache as the app's own JSON error."""
    status = 404 if isinstance(e, NotFound) else 503
    return JSONResponse({"error": e.message, "code": e.code}, status_code=status)


def create_app(
    url: str | None = None, *, token: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> FastAPI:
    """The app; arguments override the environment (the tests use them)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncClient(
            url or os.environ.get("TIERCACHE_URL") or "http://127.0.0.1:8077",
            token=token,
            data_dir=data_dir or os.environ.get("TIERCACHE_DATA_DIR") or None,
        )
        app.state.client = client
        app.state.strava = SmartStravaCache(client)
        app.state.fundraising = FundraisingTotals(client)
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(title="Fundraising tracker", lifespan=lifespan)

    @app.get("/activities", response_model=None)
    async def activities(request: Request) -> dict[str, Any] | JSONResponse:
        strava: SmartStravaCache = request.app.state.strava
        try:
            found = await strava.get_activities()
        except Error as e:
            return _error(e)
        return {"activities": found.activities, "timestamp": found.timestamp, "tier": found.tier, "stale": found.stale}

    @app.get("/stats", response_model=None)
    async def stats(request: Request) -> dict[str, Any] | JSONResponse:
        strava: SmartStravaCache = request.app.state.strava
        try:
            return await strava.get_totals()
        except Error as e:
            return _error(e)

    @app.get("/fundraising", response_model=None)
    async def fundraising(request: Request) -> dict[str, Any] | JSONResponse:
        totals: FundraisingTotals = request.app.state.fundraising
        try:
            return await totals.get_totals()
        except Error as e:
            return _error(e)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        """Which tier answered for each cache: `memory`, `file`... from the daemon,
        `file-direct` when the daemon is down and its files answered. 503 when a cache
        could not be read at all (a cache without data yet is not a failure)."""
        client: AsyncClient = request.app.state.client
        caches: dict[str, dict[str, Any]] = {}
        healthy = True
        for name in CACHES:
            try:
                doc = await client.get(name)
            except NoData:
                caches[name] = {"tier": None, "error": "no_data"}
            except Error as e:
                caches[name] = {"tier": None, "error": e.code}
                healthy = False
            else:
                caches[name] = {"tier": doc.tier, "stale": doc.stale, "version": doc.version}
        down = any(
            c.get("tier") == "file-direct" or c.get("error") in ("unreachable", "no_file") for c in caches.values()
        )
        body = {"status": "ok" if healthy else "unavailable", "daemon": "down" if down else "up", "caches": caches}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app


app = create_app()
