"""What the client returns: small frozen dataclasses, never bare dicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Document", "LastRefresh", "Meta", "RetryQueue", "Saved", "Status"]


@dataclass(frozen=True, slots=True)
class Document:
    """One version of a cache's document.

    `data` is shared by every `Document` of the same version that one client returns
    (a revalidated `get` costs no parsing): treat it as read-only, and copy it
    (`copy.deepcopy`) before changing it.

    `tier` is the tier that answered: `memory`, `file`, `postgres`, `refresh` or `stale`
    as the daemon says (`X-Cache-Tier`), or `file-direct` when the daemon could not be
    reached and the client read `data_dir/caches/NAME.json` itself. `stale` is true when
    the data is past its cache's `refresh_every`.

    `last_fetch` is when the data was last fetched (its save time when it never was):
    over HTTP from `Last-Modified`, to the second. `saved_at` and `last_rich_fetch` come
    only with a `file-direct` read (the envelope holds them); over HTTP they are `None`,
    and `meta()` has them.
    """

    name: str
    data: Any
    version: int
    etag: str
    tier: str
    stale: bool
    last_fetch: datetime | None = None
    saved_at: datetime | None = None
    last_rich_fetch: datetime | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """A save acknowledged by the daemon: durable on disk."""

    name: str
    version: int
    #: `sha256:` and 64 hex digits, over the canonical document.
    checksum: str
    saved_at: datetime
    etag: str


@dataclass(frozen=True, slots=True)
class LastRefresh:
    """How the daemon last refreshed a cache."""

    reason: str
    result: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Meta:
    """What the daemon knows about a cache's current version (`GET .../meta`); every
    field but `name` is `None` for a cache without data. `raw` is the whole answer, for
    fields newer than this client."""

    name: str
    version: int | None
    checksum: str | None
    size: int | None
    last_fetch: datetime | None
    last_rich_fetch: datetime | None
    saved_at: datetime | None
    tier: str | None
    stale: bool | None
    next_refresh_at: datetime | None
    postgres_synced: bool | None
    source: str | None = None
    last_refresh_error: str | None = None
    last_refresh_error_at: datetime | None = None
    error: str | None = None
    #: The upstream account withdrew the app's authorization (`None`: an older daemon).
    deauthorized: bool | None = None
    last_refresh: LastRefresh | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RetryQueue:
    """The queue of saves waiting for Postgres."""

    enabled: bool
    depth: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class Status:
    """The daemon at a glance: readiness, every configured cache's meta, and the retry
    queue (`None` without Postgres)."""

    ready: bool
    caches: tuple[Meta, ...]
    retry_queue: RetryQueue | None
