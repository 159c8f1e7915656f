"""The errors of the client: one hierarchy under `tiercache.Error`, one class per kind of
answer, each carrying the daemon's `code` and message. An app catches `Error`, or the
one case it handles; no bare `httpx` error ever escapes."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Error",
    "Forbidden",
    "Invalid",
    "NoData",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]


class Error(Exception):
    """Anything the client could not do.

    `status` is the HTTP status (`None` when the daemon was not reached), `code` the
    daemon's machine-readable code (`unknown_cache`, `schema_mismatch`...; `unreachable`,
    `file_corrupt`, `no_file` or `unexpected_answer` for what the client itself
    detected), `message` the text for people.
    """

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status!r})"


class NotFound(Error):
    """404: no cache of this name is configured (`unknown_cache`)."""


class Unavailable(Error):
    """Nothing can be served or stored now: the daemon answered 503 (`too_stale`,
    `refresh_failed`, `tiers_unavailable`, `storage_unavailable`, upstream
    `rate_limited`...), or it could not be reached and the cache's file could not be read
    either (`unreachable`, `no_file`, `file_corrupt`). `retry_after` is in seconds, when
    the daemon said."""

    def __init__(self, message: str, *, code: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class NoData(Unavailable):
    """503 `no_data`: the cache holds nothing and no refresh is possible now."""


class Conflict(Error):
    """412 `precondition_failed`: `if_match` does not match the current version; also
    409 `no_source`: a refresh of a cache that has no source (it is filled by saves)."""


class Invalid(Error):
    """The daemon refused the document: 422 `schema_mismatch` (`errors` lists the schema's
    complaints, each `"/json/pointer: message"`), or 400/415 for a body it cannot read."""

    def __init__(self, message: str, *, code: str, status: int | None = None, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message, code=code, status=status)
        self.errors = errors


class TooLarge(Error):
    """413 `too_large`: the document is over the cache's `max_size` (or `api.max_body`)."""


class Unauthorized(Error):
    """401: no valid token (`unauthorized`, `invalid_token`)."""


class Forbidden(Unauthorized):
    """403: the token's scope is too narrow (`insufficient_scope`: a read token asked for a
    write), or the client's address is outside `api.allow` (`address_not_allowed`)."""


class RateLimited(Error):
    """429 `too_many_requests`: over `api.rate_limit_per_second`; retry after
    `retry_after` seconds."""

    def __init__(self, message: str, *, code: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after
