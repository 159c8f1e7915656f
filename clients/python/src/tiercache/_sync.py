"""`Client`: the synchronous client."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

import httpx

from ._address import parse_url, resolve_token
from ._core import Core, Request, unreachable_error
from .errors import Error
from .models import Document, Meta, Saved, Status

__all__ = ["Client"]


class Client:
    """A client of one tiercache daemon, over HTTP or a unix socket.

    `url` is `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH` (the daemon's
    `api.listen` forms). The token is `token`, else the content of `token_file`, else
    `$TIERCACHE_TOKEN`. `timeout` bounds every request, in seconds.

    `get` keeps the last document of each cache and revalidates it with
    `If-None-Match`, so an unchanged document costs a 304 and no parsing. `ttl` (seconds,
    off by default) reuses it without asking at all for that long. With `data_dir` (the
    daemon's, read-only), a `get` that cannot reach the daemon reads and verifies
    `data_dir/caches/NAME.json` itself (tier `file-direct`), stale past the cache's
    `refresh_every` as the daemon's `/v1/openapi.json` describes it (or as given in
    `refresh_every`, seconds or timedelta by cache name). It never writes there.

    Use it as a context manager, or call `close()`, to close its connections.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        ttl: float | None = None,
        refresh_every: Mapping[str, float | timedelta | None] | None = None,
    ) -> None:
        address = parse_url(url)
        self._core = Core(address, resolve_token(token, token_file), data_dir, ttl, refresh_every)
        # One transport (one connection pool) for the client and for the revalidating GET,
        # which goes to it directly: the client's own layers (auth flows, redirects,
        # cookies, event hooks) have nothing to do for it and cost a third of its time.
        self._transport = httpx.HTTPTransport(uds=address.uds)
        self._http = httpx.Client(
            base_url=address.base_url, transport=self._transport, timeout=timeout, trust_env=False
        )
        self._prepared: dict[str, tuple[str | None, httpx.Request]] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def _send(self, request: Request) -> httpx.Response:
        return self._http.request(
            request.method, request.path, headers=request.headers, content=request.content, params=request.params
        )

    def _call(self, request: Request) -> httpx.Response:
        try:
            return self._send(request)
        except httpx.TransportError as e:
            self._core.unreachable()
            raise unreachable_error(self._core.address, e) from e
        except httpx.RequestError as e:
            raise Error(f"{request.method} {request.path}: {e}", code="unexpected_answer") from e

    def get(self, name: str) -> Document:
        """The cache's document (see the class documentation for revalidation and the
        read from the files). Raises `NotFound`, `NoData`, `Unavailable`,
        `Unauthorized`..."""
        held = self._core.reusable(name)
        if held is not None:
            return held
        hung = self._core.held_off()
        if hung is not None:
            return self._core.file_direct(name, hung)
        request = self._prepared_get(name)
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as e:
            return self._core.file_direct(name, e)
        except httpx.RequestError as e:
            raise Error(f"GET {request.url.path}: {e}", code="unexpected_answer") from e
        doc = self._core.document(name, response)
        if self._core.wants_description():
            self._describe()
        return doc

    def _prepared_get(self, name: str) -> httpx.Request:
        """The `GET` of `name`, built once per ETag held (building one costs more than the
        rest of a revalidation)."""
        etag = self._core.held_etag(name)
        prepared = self._prepared.get(name)
        if prepared is not None and prepared[0] == etag:
            return prepared[1]
        request = self._core.get_request(name)
        built = self._http.build_request(request.method, request.path, headers=request.headers)
        self._prepared[name] = (etag, built)
        return built

    def _describe(self) -> None:
        try:
            response = self._send(self._core.plain("GET", "/v1/openapi.json"))
        except httpx.RequestError:
            self._core.description_failed()
            return
        self._core.described(response)

    def save(self, name: str, data: Any, if_match: str | Document | None = None) -> Saved:
        """Saves a new version; returns once the daemon has it durable on disk.

        `if_match` (an ETag, a `Document`, or `"*"`: the cache must hold data) makes the
        save conditional: `Conflict` when the cache is at another version. `Invalid` with
        `errors` when it fails the cache's JSON Schema, `TooLarge` over its `max_size`.
        """
        return self._core.saved(name, self._call(self._core.save_request(name, data, if_match)))

    def delete(self, name: str) -> None:
        """Purges the cache from every tier, the retry queue and Postgres."""
        self._core.deleted(name, self._call(self._core.plain("DELETE", self._core.path(name))))

    def meta(self, name: str) -> Meta:
        """What the daemon knows about the cache's current version."""
        return self._core.meta(self._call(self._core.plain("GET", self._core.path(name, "/meta"))))

    def list(self) -> builtins.list[Meta]:
        """Every configured cache's meta, by name."""
        caches, _ = self._core.listed(self._call(self._core.plain("GET", "/v1/caches")))
        return builtins.list(caches)

    def refresh(self, name: str, full: bool = False) -> None:
        """Starts a refresh from the cache's source (`Conflict` when it has none); `full`
        re-reads everything (a Strava source, instead of only newer activities)."""
        params = {"full": "true"} if full else None
        self._core.refreshed(self._call(self._core.plain("POST", self._core.path(name, "/refresh"), params)))

    def status(self) -> Status:
        """Readiness, every cache's meta and the retry queue."""
        ready = self._call(self._core.plain("GET", "/readyz"))
        return self._core.status(ready, self._call(self._core.plain("GET", "/v1/caches")))
