"""tiercache: the Python client of the tiercache daemon.

    from tiercache import Client

    with Client("unix:/run/tiercache/api.sock", data_dir="/var/lib/tiercache/data") as cache:
        doc = cache.get("strava")          # doc.data, doc.version, doc.etag, doc.tier, doc.stale
        cache.save("fundraising", {"total": "1250.00"}, if_match=doc)

`Client` and `AsyncClient` have the same methods (`get`, `save`, `delete`, `meta`,
`list`, `refresh`, `status`); every error is a `tiercache.Error`. `tiercache.compat`
keeps the old `SupabaseCacheManager` interface; `tiercache.envelope` reads the daemon's
cache files; `tiercache.testing` starts a real daemon for an app's tests.
"""

from ._async import AsyncClient
from ._core import VERSION
from ._sync import Client
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

__version__ = VERSION

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "Document",
    "Error",
    "Forbidden",
    "Invalid",
    "LastRefresh",
    "Meta",
    "NoData",
    "NotFound",
    "RateLimited",
    "RetryQueue",
    "Saved",
    "Status",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "__version__",
]
