"""`SmartStravaCache`: the app's Strava activities, read through tiercache.

The class keeps the name and the methods the app's routes call. What it did itself
before (fetch from Strava on a schedule, keep JSON files and an in-memory copy, sync a
Supabase table, retry, fall back to the file) is the daemon's job now; the client keeps
the last document and revalidates it, and reads the daemon's files if it is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiercache import AsyncClient, Document


@dataclass(frozen=True, slots=True)
class Activities:
    """The activities as served, with where they came from."""

    activities: list[dict[str, Any]]
    timestamp: str | None
    tier: str
    stale: bool


class SmartStravaCache:
    """The `strava` cache: `{"timestamp": FETCH_TIME, "activities": [...]}`."""

    def __init__(self, client: AsyncClient, cache: str = "strava") -> None:
        self._client = client
        self._cache = cache

    async def _document(self) -> Document:
        return await self._client.get(self._cache)

    async def get_activities(self) -> Activities:
        """Every activity, newest first (as Strava lists them)."""
        doc = await self._document()
        data = doc.data if isinstance(doc.data, dict) else {}
        activities = [a for a in data.get("activities", []) if isinstance(a, dict)]
        return Activities(activities, data.get("timestamp"), doc.tier, doc.stale)

    async def get_totals(self) -> dict[str, Any]:
        """Count and distance of the activities, for the tracker's headline."""
        found = await self.get_activities()
        metres = sum(float(a.get("distance", 0) or 0) for a in found.activities)
        return {
            "activities": len(found.activities),
            "distance_km": round(metres / 1000, 2),
            "timestamp": found.timestamp,
            "tier": found.tier,
            "stale": found.stale,
        }

    async def refresh(self, full: bool = False) -> None:
        """Asks the daemon for a refresh now (it owns the Strava credentials)."""
        await self._client.refresh(self._cache, full=full)
