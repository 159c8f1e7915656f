"""The cache file envelope (format 1): reading and verifying `data_dir/caches/NAME.json`.

The daemon writes one envelope per cache: a JSON object with `format`, `project`,
`name`, `version`, `checksum` (`"sha256:HEX"` of the canonical document), `last_fetch`,
`last_rich_fetch`, `saved_at` and `data`. This module accepts and refuses exactly what
the daemon accepts and refuses (docs/envelope.md in the daemon's repository is the
format's description): the checksum is checked over the data as found, and, when that
misses (a file reformatted by hand), over its canonical form. It only ever reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .canonical import CanonicalError, canonicalize

__all__ = ["FORMAT", "Envelope", "EnvelopeError", "decode", "parse_time", "project_of", "read", "valid_name"]

#: The envelope format this module reads.
FORMAT = 1

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,49}")
_CHECKSUM = re.compile(r"sha256:[0-9a-fA-F]{64}")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))")
_WHITESPACE = " \t\n\r"
_MARK_SAVED_AT = b'"saved_at":"'
_MARK_DATA = b'","data":'
_REQUIRED = ("format", "project", "name", "version", "checksum", "saved_at", "data")
_KNOWN = frozenset((*_REQUIRED, "last_fetch", "last_rich_fetch"))


class EnvelopeError(ValueError):
    """The file is not a valid envelope for the cache asked for: it must not be served."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope."""

    project: str
    name: str
    version: int
    #: `sha256:` and 64 lowercase hex digits.
    checksum: str
    last_fetch: datetime | None
    last_rich_fetch: datetime | None
    saved_at: datetime
    #: The document, parsed.
    data: Any
    #: The document's bytes as the daemon serves them (canonical JSON).
    body: bytes

    @property
    def etag(self) -> str:
        """The ETag the daemon gives this version: `"VERSION-C"`, C the first 16 hex digits."""
        return f'"{self.version}-{self.checksum[7:23]}"'

    @property
    def fetched_at(self) -> datetime:
        """When the document was last fetched; its save time when it never was."""
        return self.last_fetch or self.saved_at


def valid_name(name: str) -> bool:
    """Whether `name` is a valid cache name (`^[a-z][a-z0-9_-]{0,49}$`)."""
    return _NAME.fullmatch(name) is not None


def parse_time(value: str, key: str = "time") -> datetime:
    """An RFC 3339 time (`2026-11-26T10:00:00.123456Z`, any offset), in UTC."""
    m = _TIME.fullmatch(value)
    if m is None:
        raise EnvelopeError(f"{key}: not an RFC 3339 time: {value!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zulu, sign, off_h, off_m = m.group(7), m.group(8), m.group(9), m.group(10), m.group(11)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, micros, tzinfo=timezone(offset))
    except ValueError as e:
        raise EnvelopeError(f"{key}: {e}: {value!r}") from e
    return local.astimezone(timezone.utc)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _refuse_constant(token: str) -> Any:
    raise EnvelopeError(f"{token} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _members(text: str) -> dict[str, tuple[Any, int, int]]:
    """The known members of the top-level object: value and its span in `text`.

    Like the daemon's parser: a known member twice is an error, unknown ones are
    skipped (but must be JSON), nothing may follow the object.
    """
    found: dict[str, tuple[Any, int, int]] = {}
    i = _skip(text, 0)
    if i >= len(text) or text[i] != "{":
        raise EnvelopeError("not a JSON object")
    i = _skip(text, i + 1)
    if i < len(text) and text[i] == "}":
        i += 1
    else:
        while True:
            if i >= len(text) or text[i] != '"':
                raise EnvelopeError(f"expected a member name at byte {i}")
            key, i = json.decoder.scanstring(text, i + 1, True)  # type: ignore[attr-defined]
            i = _skip(text, i)
            if i >= len(text) or text[i] != ":":
                raise EnvelopeError(f"expected ':' at byte {i}")
            start = _skip(text, i + 1)
            value, end = _DECODER.raw_decode(text, start)
            if key in _KNOWN:
                if key in found:
                    raise EnvelopeError(f"duplicate field `{key}`")
                found[key] = (value, start, end)
            i = _skip(text, end)
            if i < len(text) and text[i] == ",":
                i = _skip(text, i + 1)
                continue
            if i < len(text) and text[i] == "}":
                i += 1
                break
            raise EnvelopeError(f"expected ',' or '}}' at byte {i}")
    if _skip(text, i) != len(text):
        raise EnvelopeError("trailing characters after the envelope")
    return found


@dataclass(frozen=True, slots=True)
class _Header:
    format: int
    project: str
    name: str
    version: int
    checksum: str
    last_fetch: datetime | None
    last_rich_fetch: datetime | None
    saved_at: datetime


def _unsigned(value: Any, key: str, bits: int) -> int:
    if type(value) is not int or not 0 <= value < 2**bits:
        raise EnvelopeError(f"{key}: expected an unsigned {bits}-bit integer, found {value!r}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{key}: expected a string, found {value!r}")
    return value


def _optional_time(members: dict[str, tuple[Any, int, int]], key: str) -> datetime | None:
    if key not in members or members[key][0] is None:
        return None
    return parse_time(_string(members[key][0], key), key)


def _header(members: dict[str, tuple[Any, int, int]]) -> _Header:
    for key in _REQUIRED:
        if key not in members:
            raise EnvelopeError(f"missing field `{key}`")
    checksum = _string(members["checksum"][0], "checksum")
    if not _CHECKSUM.fullmatch(checksum):
        raise EnvelopeError('checksum: expected "sha256:" and 64 hex digits')
    return _Header(
        format=_unsigned(members["format"][0], "format", 32),
        project=_string(members["project"][0], "project"),
        name=_string(members["name"][0], "name"),
        version=_unsigned(members["version"][0], "version", 64),
        checksum=checksum.lower(),
        last_fetch=_optional_time(members, "last_fetch"),
        last_rich_fetch=_optional_time(members, "last_rich_fetch"),
        saved_at=parse_time(_string(members["saved_at"][0], "saved_at"), "saved_at"),
    )


def _parse_header(text: str) -> _Header:
    try:
        return _header(_members(text))
    except (ValueError, RecursionError) as e:
        if isinstance(e, EnvelopeError):
            raise
        raise EnvelopeError(f"not a valid envelope: {e}") from e


def _check_owner(h: _Header, name: str, project: str | None) -> None:
    if h.format != FORMAT:
        raise EnvelopeError(f"unknown envelope format {h.format}")
    if (project is not None and h.project != project) or h.name != name:
        expected = f"{project}/{name}" if project is not None else name
        raise EnvelopeError(f"envelope is for {h.project}/{h.name}, expected {expected}")
    if h.version == 0:
        raise EnvelopeError("version must be positive")


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _envelope(h: _Header, body: bytes) -> Envelope:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise EnvelopeError(f"the data cannot be read: {e}") from e
    return Envelope(h.project, h.name, h.version, h.checksum, h.last_fetch, h.last_rich_fetch, h.saved_at, data, body)


def _split(raw: bytes) -> tuple[bytes, int, int] | None:
    """The header of an envelope laid out as the daemon writes it (its `data` replaced by
    `0`) and the data's byte range, found without reading the data: the first
    `"saved_at":"` is the header's own, since a quote inside a JSON string is escaped."""
    at = raw[:4096].find(_MARK_SAVED_AT)
    if at < 0:
        return None
    head = at + len(_MARK_SAVED_AT)
    close = raw[head : head + min(64, len(raw) - head)].find(_MARK_DATA)
    if close < 0:
        return None
    if raw.endswith(b"}\n"):
        end = len(raw) - 2
    elif raw.endswith(b"}"):
        end = len(raw) - 1
    else:
        return None
    start = head + close + len(_MARK_DATA)
    if start >= end:
        return None
    return raw[:start] + b"0}", start, end


def decode(raw: bytes, name: str, project: str | None = None) -> Envelope:
    """Parses and verifies the envelope `raw` of cache `name` (of `project`, when given).

    Raises `EnvelopeError` for anything the daemon would not serve: not JSON, fields
    missing or mistyped, another format, another cache or project, version 0, or data
    that does not hash to the recorded checksum (neither as found nor in canonical form).
    """
    split = _split(raw)
    if split is not None:
        header, start, end = split
        try:
            h: _Header | None = _parse_header(header.decode("utf-8"))
        except (EnvelopeError, UnicodeDecodeError):
            h = None
        if h is not None:
            body = raw[start:end]
            if _sha256(body) == h.checksum:
                _check_owner(h, name, project)
                return _envelope(h, body)
    return _decode_slow(raw, name, project)


def _decode_slow(raw: bytes, name: str, project: str | None) -> Envelope:
    """The full parse: for envelopes reformatted or edited by hand."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EnvelopeError(f"not a valid envelope: not UTF-8: {e}") from e
    try:
        members = _members(text)
    except EnvelopeError:
        raise
    except (ValueError, RecursionError) as e:
        raise EnvelopeError(f"not a valid envelope: {e}") from e
    h = _header(members)
    _check_owner(h, name, project)
    _, start, end = members["data"]
    body = text[start:end].encode("utf-8")
    computed = _sha256(body)
    if computed != h.checksum:
        try:
            body = canonicalize(text[start:end])
        except CanonicalError as e:
            raise EnvelopeError(f"not a valid envelope: {e}") from e
        computed = _sha256(body)
    if computed != h.checksum:
        raise EnvelopeError(f"checksum mismatch: recorded {h.checksum}, computed {computed}")
    return _envelope(h, body)


def project_of(data_dir: str | Path) -> str | None:
    """The project that owns `data_dir` (its `project` file), or `None` if it has none."""
    try:
        return (Path(data_dir) / "project").read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return None


def read(data_dir: str | Path, name: str) -> Envelope:
    """Reads and verifies `data_dir/caches/NAME.json`, checking it against the project
    that owns `data_dir` when it records one.

    Raises `EnvelopeError` for an invalid name or envelope, and `OSError` when the file
    cannot be read (`FileNotFoundError` when the cache has no file).
    """
    if not valid_name(name):
        raise EnvelopeError(f"{name!r} is not a valid cache name")
    raw = (Path(data_dir) / "caches" / f"{name}.json").read_bytes()
    return decode(raw, name, project_of(data_dir))
