"""The old app's cache manager, on tiercache: change one import.

    # before: from .supabase_cache_manager import SupabaseCacheManager
    from tiercache.compat import SupabaseCacheManager

`get_cache`, `save_cache` and `get_last_fetch_time` keep their names, arguments and
return shapes (`{"data": ..., "last_fetch": ..., "last_rich_fetch": ...}` or `None`; `True`
or `False`; a `datetime` or `None`), and like the old class they never raise: a failure
is logged and answered `None` or `False`. Configured by the environment:
`TIERCACHE_URL` (default `http://127.0.0.1:8077`, or `unix:PATH`), `TIERCACHE_TOKEN`, and
`TIERCACHE_DATA_DIR` (the daemon's `data_dir`: reads keep working from its files while
the daemon is down). `STRAVA_CACHE_HOURS` and `FUNDRAISING_CACHE_MINUTES`, when set (the
daemon reads them too), say when a document read from the files is stale; otherwise the
daemon's description says.
"""

from __future__ import annotations

import copy
import logging
import os
from datetime import datetime, timedelta
from typing import Any

from ._sync import Client
from .errors import Error
from .models import Document

__all__ = ["SupabaseCacheManager"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8077"


def _schedules_from_env() -> dict[str, float | timedelta | None]:
    """The old app's schedule variables, as the daemon reads them."""
    schedules: dict[str, float | timedelta | None] = {}
    for name, variable, unit in (
        ("strava", "STRAVA_CACHE_HOURS", 3600.0),
        ("fundraising", "FUNDRAISING_CACHE_MINUTES", 60.0),
    ):
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                schedules[name] = float(value) * unit
            except ValueError:
                logger.warning("%s=%r is not a number; ignored", variable, value)
    return schedules


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


class SupabaseCacheManager:
    """The old `SupabaseCacheManager`, backed by a tiercache daemon (see the module
    documentation). `client` replaces the one built from the environment."""

    def __init__(self, client: Client | None = None) -> None:
        #: Kept from the old class: tiercache is always on.
        self.enabled = True
        self._client = client or Client(
            os.environ.get("TIERCACHE_URL", "").strip() or DEFAULT_URL,
            data_dir=os.environ.get("TIERCACHE_DATA_DIR", "").strip() or None,
            refresh_every=_schedules_from_env(),
        )

    @property
    def client(self) -> Client:
        """The client underneath, for what the old interface cannot say."""
        return self._client

    def _times(self, cache_type: str, doc: Document) -> tuple[datetime | None, datetime | None]:
        """(last_fetch, last_rich_fetch) of `doc`: from its file when read from one, else
        from the daemon's meta (the document's headers carry the fetch time only)."""
        if doc.tier != "file-direct":
            try:
                meta = self._client.meta(cache_type)
            except Error as e:
                logger.warning("tiercache meta of %s failed: %s", cache_type, e)
            else:
                if meta.version == doc.version:
                    return meta.last_fetch, meta.last_rich_fetch
        return doc.last_fetch, doc.last_rich_fetch

    def get_cache(self, cache_type: str, project_id: str | None = None) -> dict[str, Any] | None:
        """`{"data": ..., "last_fetch": ISO or None, "last_rich_fetch": ISO or None}`, or
        `None` when the cache has nothing to give. `data` is the caller's own copy.
        `project_id` is accepted for old callers; the daemon's configuration decides."""
        try:
            doc = self._client.get(cache_type)
        except Error as e:
            logger.warning("tiercache read of %s failed: %s", cache_type, e)
            return None
        last_fetch, last_rich_fetch = self._times(cache_type, doc)
        return {
            "data": copy.deepcopy(doc.data),
            "last_fetch": _iso(last_fetch),
            "last_rich_fetch": _iso(last_rich_fetch),
        }

    def save_cache(
        self,
        cache_type: str,
        data: Any,
        last_fetch: datetime | None = None,
        last_rich_fetch: datetime | None = None,
        project_id: str | None = None,
    ) -> bool:
        """Saves `data`; `True` once the daemon has it durable on disk (it reaches Postgres
        by the daemon's retry queue), `False` if it was refused or could not be sent.
        The daemon records the save's time as `last_fetch`, as for any save:
        `last_fetch` and `last_rich_fetch` are accepted for old callers only."""
        try:
            self._client.save(cache_type, data)
        except Error as e:
            logger.error("tiercache save of %s failed: %s", cache_type, e)
            return False
        return True

    def get_last_fetch_time(self, cache_type: str, project_id: str | None = None) -> datetime | None:
        """When the cache's data was last fetched (UTC), or `None`."""
        cached = self.get_cache(cache_type)
        if cached is None or cached["last_fetch"] is None:
            return None
        return datetime.fromisoformat(cached["last_fetch"])
