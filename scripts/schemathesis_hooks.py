"""Checks of scripts/schemathesis beyond schemathesis's own (loaded by SCHEMATHESIS_HOOKS)."""

from typing import Any

import requests
import schemathesis

# The one 503 this setup can produce: a cache filled by PUT, without data (after a DELETE).
# Without Postgres, with a source that always works and a writable data_dir, any other
# 503 (storage_unavailable, tiers_unavailable, refresh_failed...) is a bug.
EXPECTED_UNAVAILABLE = {"no_data"}


def _error_code(response: Any) -> object:
    """The `code` of a 503's JSON error body; for a HEAD, which has no body, the code of
    the same request sent as GET (HEAD answers like GET)."""
    if response.request.method == "HEAD":
        again = requests.get(
            response.request.url, headers=dict(response.request.headers), timeout=30
        )
        if again.status_code != 503:
            return None  # the cache changed in between; the GET is judged on its own
        return again.json().get("code")
    return response.json().get("code")


@schemathesis.check  # type: ignore[untyped-decorator]  # schemathesis ships no types here
def only_no_data_is_unavailable(ctx: Any, response: Any, case: Any) -> None:
    """A 503 is allowed only as `no_data`, with a JSON error body."""
    if response.status_code != 503:
        return
    try:
        code = _error_code(response)
    except Exception as exc:
        raise AssertionError(f"503 without a JSON error body: {exc}") from exc
    if code is None and response.request.method == "HEAD":
        return
    if code not in EXPECTED_UNAVAILABLE:
        raise AssertionError(
            f"503 with code {code!r}; only {sorted(EXPECTED_UNAVAILABLE)} is expected here"
        )
