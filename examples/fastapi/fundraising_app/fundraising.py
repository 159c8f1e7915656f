"""The fundraising page's totals (a JustGiving page, refreshed by the daemon), read
through tiercache. Amounts are the page's decimal strings, kept exact with `Decimal`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tiercache import AsyncClient


def _amount(data: dict[str, Any], key: str) -> Decimal:
    try:
        return Decimal(str(data.get(key) or "0"))
    except InvalidOperation:
        return Decimal(0)


class FundraisingTotals:
    """The `fundraising` cache: JustGiving's page document as fetched."""

    def __init__(self, client: AsyncClient, cache: str = "fundraising") -> None:
        self._client = client
        self._cache = cache

    async def get_totals(self) -> dict[str, Any]:
        """Raised, target and progress, as strings of exact decimals."""
        doc = await self._client.get(self._cache)
        data = doc.data if isinstance(doc.data, dict) else {}
        raised = _amount(data, "grandTotalRaisedExcludingGiftAid")
        target = _amount(data, "fundraisingTarget")
        percent = (raised * 100 / target).quantize(Decimal("0.1")) if target else None
        return {
            "raised": str(raised),
            "target": str(target),
            "percent": str(percent) if percent is not None else None,
            "tier": doc.tier,
            "stale": doc.stale,
        }
