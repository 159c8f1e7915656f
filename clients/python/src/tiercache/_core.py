"""What `Client` and `AsyncClient` share: the requests they build, what they make of the
answers (models or typed errors), the last document of each cache for revalidation, and
the read of a cache's file when the daemon cannot be reached. No I/O but that file read:
the two clients only send what this builds."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from . import envelope
from ._address import Address
from .errors import (
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
from .models import Document, LastRefresh, Meta, RetryQueue, Saved, Status

VERSION = "0.1.0"

#: How long what the daemon's description said (schedules, cache names) is trusted
#: before it is asked again, and how long to wait after a failed attempt.
DESCRIPTION_TTL = 300.0
DESCRIPTION_RETRY = 60.0
#: After a request to the daemon timed out (a hung daemon, not a dead one, which refuses
#: at once), `get` goes straight to the files for this long rather than make every
#: caller wait out the timeout again.
TIMEOUT_HOLD = 2.0


class Hung(Exception):
    """The daemon timed out a moment ago (see `TIMEOUT_HOLD`); it is not asked again yet."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request to send."""

    method: str
    path: str
    headers: Mapping[str, str]
    content: bytes | None = None
    params: Mapping[str, str] | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return envelope.parse_time(value)
    except ValueError:
        return None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _version(etag: str) -> int:
    try:
        return int(etag.strip('"').split("-", 1)[0])
    except ValueError as e:
        raise Error(f"the daemon sent an ETag that is not its own: {etag!r}", code="unexpected_answer") from e


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_from(response: httpx.Response) -> Error:
    """The typed error for a refusal."""
    body = _body(response)
    status = response.status_code
    code = str(body.get("code") or f"http_{status}")
    message = str(body.get("error") or response.text.strip() or response.reason_phrase)
    retry_after = _seconds(response.headers.get("retry-after"))
    if status == 404:
        return NotFound(message, code=code, status=status)
    if status in (409, 412):
        return Conflict(message, code=code, status=status)
    if status in (400, 415, 422):
        errors = body.get("errors")
        found = tuple(str(e) for e in errors) if isinstance(errors, list) else ()
        return Invalid(message, code=code, status=status, errors=found)
    if status == 413:
        return TooLarge(message, code=code, status=status)
    if status == 401:
        return Unauthorized(message, code=code, status=status)
    if status == 403:
        return Forbidden(message, code=code, status=status)
    if status == 429:
        return RateLimited(message, code=code, status=status, retry_after=retry_after)
    if status == 503 and code == "no_data":
        return NoData(message, code=code, status=status, retry_after=retry_after)
    if status >= 500:
        return Unavailable(message, code=code, status=status, retry_after=retry_after)
    return Error(f"unexpected answer {status}: {message}", code=code, status=status)


def meta_from(body: Mapping[str, Any]) -> Meta:
    """A `Meta` from the daemon's JSON."""
    last = body.get("last_refresh")
    last_refresh = None
    if isinstance(last, dict):
        at = _time(last.get("at"))
        if at is not None:
            last_refresh = LastRefresh(str(last.get("reason")), str(last.get("result")), at)

    def optional(key: str, kind: type) -> Any:
        value = body.get(key)
        return value if isinstance(value, kind) and not (kind is int and isinstance(value, bool)) else None

    return Meta(
        name=str(body.get("name")),
        version=optional("version", int),
        checksum=optional("checksum", str),
        size=optional("size", int),
        last_fetch=_time(body.get("last_fetch")),
        last_rich_fetch=_time(body.get("last_rich_fetch")),
        saved_at=_time(body.get("saved_at")),
        tier=optional("tier", str),
        stale=optional("stale", bool),
        next_refresh_at=_time(body.get("next_refresh_at")),
        postgres_synced=optional("postgres_synced", bool),
        source=optional("source", str),
        last_refresh_error=optional("last_refresh_error", str),
        last_refresh_error_at=_time(body.get("last_refresh_error_at")),
        error=optional("error", str),
        deauthorized=optional("deauthorized", bool),
        last_refresh=last_refresh,
        raw=dict(body),
    )


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    body = _body(response)
    if not body:
        raise Error(
            f"{what}: the daemon's answer is not a JSON object", code="unexpected_answer", status=response.status_code
        )
    return body


class Core:
    """The state of one client (thread-safe): see the module documentation."""

    def __init__(
        self,
        address: Address,
        token: str | None,
        data_dir: str | os.PathLike[str] | None,
        ttl: float | None,
        refresh_every: Mapping[str, float | timedelta | None] | None,
    ) -> None:
        self.address = address
        self.headers = {"User-Agent": f"tiercache-python/{VERSION}", "Accept": "application/json"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.ttl = ttl if ttl and ttl > 0 else None
        self._given_schedules: dict[str, float | None] = {
            name: (every.total_seconds() if isinstance(every, timedelta) else every)
            for name, every in (refresh_every or {}).items()
        }
        self._lock = threading.Lock()
        # name -> (the last document the daemon sent, time.monotonic() when it came, its
        # Last-Modified as sent: an unchanged 304 returns the very same Document)
        self._documents: dict[str, tuple[Document, float, str | None]] = {}
        # What the daemon's description said: each cache's refresh_every (None: none).
        self._schedules: dict[str, float | None] = {}
        self._described_at: float | None = None
        self._description_tried_at: float | None = None
        self._have_description = False
        self._hold_until = 0.0
        # name -> (file identity, envelope) of the last file read directly.
        self._files: dict[str, tuple[tuple[int, int, int], envelope.Envelope]] = {}

    # --- requests -------------------------------------------------------------------

    def path(self, name: str, suffix: str = "") -> str:
        """`/v1/caches/NAME[suffix]`, refusing a name the daemon could not have (so that
        no other path is ever built from one)."""
        if not envelope.valid_name(name):
            raise NotFound(f"{name!r} is not a cache name (^[a-z][a-z0-9_-]{{0,49}}$)", code="unknown_cache")
        return f"/v1/caches/{name}{suffix}"

    def held_etag(self, name: str) -> str | None:
        """The ETag of the kept document, if any."""
        with self._lock:
            held = self._documents.get(name)
        return held[0].etag if held is not None else None

    def get_request(self, name: str) -> Request:
        """A `GET`, conditional on the kept document. The clients keep the request they
        build from it while that ETag holds, so a revalidation builds nothing."""
        headers = dict(self.headers)
        etag = self.held_etag(name)
        if etag is not None:
            headers["If-None-Match"] = etag
        return Request("GET", self.path(name), headers)

    def save_request(self, name: str, data: Any, if_match: str | Document | None) -> Request:
        headers = dict(self.headers, **{"Content-Type": "application/json"})
        if if_match is not None:
            headers["If-Match"] = if_match.etag if isinstance(if_match, Document) else if_match
        try:
            body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise Invalid(f"cannot send this document as JSON: {e}", code="not_json") from e
        return Request("PUT", self.path(name), headers, body)

    def plain(self, method: str, path: str, params: Mapping[str, str] | None = None) -> Request:
        return Request(method, path, dict(self.headers), None, params)

    # --- reuse and revalidation -------------------------------------------------------

    def reusable(self, name: str) -> Document | None:
        """The last document, when the in-process TTL is on and it has not run out."""
        if self.ttl is None:
            return None
        with self._lock:
            held = self._documents.get(name)
        if held is not None and time.monotonic() - held[1] < self.ttl:
            return held[0]
        return None

    def document(self, name: str, response: httpx.Response) -> Document:
        """The document of a `GET`'s answer: a 200 parsed and kept, a 304 the kept one."""
        headers = response.headers
        tier = headers.get("x-cache-tier", "")
        modified = headers.get("last-modified")
        if response.status_code == 304:
            with self._lock:
                held = self._documents.get(name)
            if held is None:
                raise Error(
                    "the daemon answered 304 to a request without If-None-Match", code="unexpected_answer", status=304
                )
            doc = held[0]
            if doc.tier != tier or held[2] != modified:
                last_fetch = _http_date(modified) or doc.last_fetch
                doc = replace(doc, tier=tier, stale=tier == "stale", last_fetch=last_fetch)
        elif response.status_code == 200:
            etag = headers.get("etag", "")
            try:
                data = json.loads(response.content)
            except ValueError as e:
                raise Error(f"the daemon's document is not JSON: {e}", code="unexpected_answer", status=200) from e
            doc = Document(name, data, _version(etag), etag, tier, tier == "stale", _http_date(modified))
        else:
            raise error_from(response)
        with self._lock:
            self._documents[name] = (doc, time.monotonic(), modified)
        return doc

    def forget(self, name: str) -> None:
        """Drops the kept document (after this client changed the cache)."""
        with self._lock:
            self._documents.pop(name, None)

    # --- the daemon's description: schedules and names ---------------------------------

    def wants_description(self) -> bool:
        """Whether to ask for `/v1/openapi.json` now: only with `data_dir` (what it says
        serves only reads from the files), when it was never read or is old."""
        if self.data_dir is None:
            return False
        now = time.monotonic()
        with self._lock:
            if self._description_tried_at is not None and now - self._description_tried_at < DESCRIPTION_RETRY:
                return False
            return self._described_at is None or now - self._described_at > DESCRIPTION_TTL

    def description_failed(self) -> None:
        with self._lock:
            self._description_tried_at = time.monotonic()

    def described(self, response: httpx.Response) -> None:
        """Keeps each configured cache's `refresh_every` from the daemon's description."""
        if response.status_code != 200:
            self.description_failed()
            return
        paths = _body(response).get("paths")
        schedules: dict[str, float | None] = {}
        for item in paths.values() if isinstance(paths, dict) else ():
            about = item.get("x-tiercache") if isinstance(item, dict) else None
            if isinstance(about, dict) and isinstance(about.get("cache"), str):
                every = about.get("refresh_every_seconds")
                schedules[about["cache"]] = float(every) if isinstance(every, int | float) else None
        with self._lock:
            self._schedules = schedules
            self._have_description = True
            self._described_at = time.monotonic()
            self._description_tried_at = None

    def unreachable(self) -> None:
        """The daemon did not answer: ask for its description again once it does (it may
        come back with another configuration)."""
        with self._lock:
            self._described_at = None
            self._description_tried_at = None

    def _schedule(self, name: str) -> tuple[bool, float | None]:
        """(known, refresh_every seconds or None for no schedule)."""
        if name in self._given_schedules:
            return True, self._given_schedules[name]
        with self._lock:
            if name in self._schedules:
                return True, self._schedules[name]
        return False, None

    def _known_unconfigured(self, name: str) -> bool:
        with self._lock:
            return self._have_description and name not in self._schedules

    # --- the daemon is down: the cache's file ------------------------------------------

    def held_off(self) -> Hung | None:
        """Why not to ask the daemon now: it timed out less than `TIMEOUT_HOLD` ago (and
        there are files to read instead)."""
        if self.data_dir is None or time.monotonic() >= self._hold_until:
            return None
        return Hung(f"it timed out less than {TIMEOUT_HOLD:g} s ago")

    def file_direct(self, name: str, cause: Exception) -> Document:
        """The document from `data_dir/caches/NAME.json`, verified as the daemon verifies
        it, tier `file-direct`; `Unavailable` without `data_dir` or without a valid file."""
        self.path(name)  # refuses what is not a cache name before it names a file
        self.unreachable()
        if isinstance(cause, httpx.TimeoutException):
            self._hold_until = time.monotonic() + TIMEOUT_HOLD
        reason = f"cannot reach the daemon at {self.address}: {type(cause).__name__}: {cause}"
        if self.data_dir is None:
            raise Unavailable(reason, code="unreachable")
        if self._known_unconfigured(name):
            raise NotFound(f"{reason}; and the daemon's configuration has no cache {name!r}", code="unknown_cache")
        path = self.data_dir / "caches" / f"{name}.json"
        try:
            env = self._read_file(name, path)
        except FileNotFoundError:
            raise Unavailable(f"{reason}; and {path} does not exist", code="no_file") from cause
        except OSError as e:
            raise Unavailable(f"{reason}; and {path} cannot be read: {e}", code="file_unreadable") from cause
        except envelope.EnvelopeError as e:
            raise Unavailable(f"{reason}; and {path} is not valid: {e}", code="file_corrupt") from cause
        known, every = self._schedule(name)
        stale = known and every is not None and env.fetched_at + timedelta(seconds=every) < datetime.now(timezone.utc)
        with self._lock:
            held = self._documents.get(name)
        # The daemon already called this very version stale.
        if held is not None and held[0].etag == env.etag and held[0].stale:
            stale = True
        data = held[0].data if held is not None and held[0].etag == env.etag else env.data
        return Document(
            name,
            data,
            env.version,
            env.etag,
            "file-direct",
            stale,
            env.fetched_at,
            env.saved_at,
            env.last_rich_fetch,
        )

    def _read_file(self, name: str, path: Path) -> envelope.Envelope:
        """The verified envelope; one that was verified already is not read again while the
        file is the same (same inode, size and time: the daemon replaces files by rename)."""
        st = path.stat()
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            seen = self._files.get(name)
        if seen is not None and seen[0] == identity:
            return seen[1]
        assert self.data_dir is not None
        env = envelope.decode(path.read_bytes(), name, envelope.project_of(self.data_dir))
        with self._lock:
            self._files[name] = (identity, env)
        return env

    # --- the other answers ----------------------------------------------------------------

    def saved(self, name: str, response: httpx.Response) -> Saved:
        self.forget(name)
        if response.status_code != 200:
            raise error_from(response)
        body = _json_object(response, "save")
        saved_at = _time(body.get("saved_at"))
        version = body.get("version")
        if saved_at is None or not isinstance(version, int):
            raise Error("save: the daemon's answer lacks version or saved_at", code="unexpected_answer", status=200)
        return Saved(
            str(body.get("name")), version, str(body.get("checksum")), saved_at, response.headers.get("etag", "")
        )

    def deleted(self, name: str, response: httpx.Response) -> None:
        self.forget(name)
        if response.status_code not in (200, 204):
            raise error_from(response)

    def meta(self, response: httpx.Response) -> Meta:
        if response.status_code != 200:
            raise error_from(response)
        return meta_from(_json_object(response, "meta"))

    def listed(self, response: httpx.Response) -> tuple[tuple[Meta, ...], RetryQueue | None]:
        if response.status_code != 200:
            raise error_from(response)
        body = _json_object(response, "list")
        caches = body.get("caches")
        if not isinstance(caches, list):
            raise Error('list: the daemon\'s answer has no "caches" list', code="unexpected_answer", status=200)
        queue = body.get("retry_queue")
        retry_queue = None
        if isinstance(queue, dict):
            oldest = queue.get("oldest_age_seconds")
            retry_queue = RetryQueue(
                bool(queue.get("enabled")),
                int(queue.get("depth") or 0),
                float(oldest) if isinstance(oldest, int | float) else None,
            )
        return tuple(meta_from(c) for c in caches if isinstance(c, dict)), retry_queue

    def refreshed(self, response: httpx.Response) -> None:
        if response.status_code != 202:
            raise error_from(response)

    def status(self, ready: httpx.Response, listing: httpx.Response) -> Status:
        caches, queue = self.listed(listing)
        return Status(ready.status_code == 200, caches, queue)


def unreachable_error(address: Address, cause: Exception) -> Unavailable:
    """What a call other than `get` raises when the daemon cannot be reached."""
    return Unavailable(f"cannot reach the daemon at {address}: {type(cause).__name__}: {cause}", code="unreachable")
