"""Where the daemon listens and how to prove who we are: the `url` and token options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The base URL requests over a unix socket carry (the daemon ignores the host).
UNIX_BASE_URL = "http://tiercache"


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed `url`: the base URL for httpx, and the socket path for a `unix:` one."""

    base_url: str
    uds: str | None

    def __str__(self) -> str:
        return f"unix:{self.uds}" if self.uds is not None else self.base_url


def parse_url(url: str) -> Address:
    """`http://HOST:PORT`, `https://HOST:PORT`, `unix:PATH` (relative to the working
    directory, like the daemon's), or `HOST:PORT` as written in `api.listen`."""
    if url.startswith("unix:"):
        path = url[len("unix:") :]
        if path.startswith("//"):  # unix:///run/tiercache.sock
            path = path[2:]
        if not path:
            raise ValueError(f"{url!r}: a unix: address needs a socket path")
        return Address(UNIX_BASE_URL, path)
    if url.startswith(("http://", "https://")):
        return Address(url.rstrip("/"), None)
    if "://" in url:
        raise ValueError(f"{url!r}: expected http://HOST:PORT, https://HOST:PORT or unix:PATH")
    if ":" not in url:
        raise ValueError(f"{url!r}: expected http://HOST:PORT or unix:PATH (HOST:PORT needs a port)")
    return Address(f"http://{url}".rstrip("/"), None)


def resolve_token(token: str | None, token_file: str | os.PathLike[str] | None) -> str | None:
    """The API token: `token`, else the content of `token_file`, else `$TIERCACHE_TOKEN`;
    `None` when none is given (a daemon without `api.tokens_file` needs none)."""
    if token is not None:
        return _check(token, "token")
    if token_file is not None:
        text = Path(token_file).read_text(encoding="utf-8").strip()
        return _check(text, f"token_file {os.fspath(token_file)}")
    from_env = os.environ.get("TIERCACHE_TOKEN", "").strip()
    return _check(from_env, "$TIERCACHE_TOKEN") if from_env else None


def _check(token: str, where: str) -> str:
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ValueError(f"{where}: a token is one word of printable characters")
    return token
