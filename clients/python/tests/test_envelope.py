"""The envelope format and the canonical form, against files and answers of the real
daemon: the client's reader accepts exactly what the daemon accepts, and computes the
same canonical bytes (unicode, large and small numbers, nested objects)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from collections.abc import Callable

import httpx
import pytest
from conftest import WRITE_TOKEN, binary

from tiercache import envelope
from tiercache.canonical import CanonicalError, canonicalize, dumps
from tiercache.testing import Daemon

#: JSON texts with what differs between serialisers: number forms, escapes, key order.
CORPUS = [
    '{"b": 1, "a": [1, {"z": 0, "y": null}], "c": {"e": {"f": {"g": [true, false, ""]}}}}',
    "[1.0, 1e2, 1E+2, -0, -0.0, 1.50, 0.1, 1e300, 1e-5, 1e-6, 0.000123, 123e-10, 1.5e15, 1e15, 1e16, 1e21]",
    "[12345678901234567890, 18446744073709551615, 18446744073709551616, -9223372036854775808, "
    "-9223372036854775809, 123456789012345678901, 9007199254740993, 100000000000000000000000]",
    "[5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 4.9406564584124654e-324, 0.1e-5, 3.0e-7]",
    '{"é": 1, "z": 2, "Z": 3, "\\uffff": 4, "😀": 5, "\\u0000": 6, "a\\"b": 7, "\\u0061": 8}',
    '"\\u007f\\u2028\\u2029\\n\\t\\b\\f\\r\\u0001\\u001f\\"\\\\\\/é😀\\ud83d\\ude00 plain"',
    '{"a": 1, "a": 2}',
    '  {"spaced" :\t[ 1 ,\n 2 ] }  ',
    "7",
    "null",
    '{"timestamp": "2026-11-26T10:00:00Z", "activities": [{"id": 1, "distance": 5012.3, "athlete": {"id": 42}}]}',
]


def random_doubles(seed: int, count: int) -> str:
    """`count` finite doubles from random bit patterns, each written as Python's repr."""
    rng = random.Random(seed)
    values: list[str] = []
    while len(values) < count:
        (f,) = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))
        if math.isfinite(f):
            values.append(repr(f))
    return "[" + ",".join(values) + "]"


def random_integers(seed: int, count: int) -> str:
    """Integers around the 64-bit limits and far beyond them."""
    rng = random.Random(seed)
    edges = [2**63, 2**64, 2**53]
    values = [str(rng.choice([-1, 1]) * (rng.choice(edges) + rng.randint(-3, 3))) for _ in range(count)]
    values += [str(rng.getrandbits(rng.randint(1, 300)) * rng.choice([-1, 1])) for _ in range(count)]
    return "[" + ",".join(values) + "]"


def put_raw(http: httpx.Client, name: str, text: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WRITE_TOKEN}"}
    answer = http.put(f"/v1/caches/{name}", content=text.encode("utf-8"), headers=headers)
    assert answer.status_code == 200, answer.text
    got = http.get(f"/v1/caches/{name}", headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
    assert got.status_code == 200
    return got


def test_the_canonical_form_is_the_daemons(daemon: Daemon) -> None:
    texts = [*CORPUS, random_doubles(20261207, 4000), random_integers(20261207, 500)]
    with httpx.Client(base_url=daemon.url) as http:
        for text in texts:
            served = put_raw(http, "scratch", text)
            assert canonicalize(text) == served.content, text[:200]
            assert canonicalize(text.encode("utf-8")) == served.content
            assert dumps(json.loads(text)) == served.content, "from Python values too"
            # And the file the daemon wrote verifies, with the same body and ETag.
            env = envelope.read(daemon.data_dir, "scratch")
            assert (env.body, env.etag) == (served.content, served.headers["etag"])
            assert env.data == json.loads(served.content)
            assert env.checksum == "sha256:" + hashlib.sha256(served.content).hexdigest()


@pytest.mark.parametrize(
    "text",
    ["NaN", "[Infinity]", "[1e400]", "[-1e400]", "{} x", "[01]", "[1.]", '"\\ud800"', "\ufeff{}", '"\x01"', "", "[1,]"],
)
def test_what_the_daemon_refuses_is_refused(daemon: Daemon, text: str) -> None:
    with pytest.raises(CanonicalError):
        canonicalize(text)
    with httpx.Client(base_url=daemon.url) as http:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WRITE_TOKEN}"}
        answer = http.put("/v1/caches/scratch", content=text.encode("utf-8"), headers=headers)
        assert answer.status_code == 400, (text, answer.text)


def test_nesting_limits() -> None:
    assert canonicalize("[" * 127 + "]" * 127) == ("[" * 127 + "]" * 127).encode()
    with pytest.raises(CanonicalError):
        canonicalize("[" * 128 + "]" * 128)


DOC = {"total": 100, "ratio": 1.5, "name": "Zoë 😀", "nested": {"b": [1, 2.25, -3], "a": None, "é": "x"}}


def reformatted(raw: bytes) -> bytes:
    """Pretty-printed, members in another order, numbers written another way."""
    env = json.loads(raw)
    data_text = json.dumps(env.pop("data"), indent=1, ensure_ascii=True).replace("100", "1e2").replace("1.5", "1.50")
    members = [f'"{k}": {json.dumps(v)}' for k, v in reversed(list(env.items()))]
    return ("{\n  " + ',\n  "data": '.join([",\n  ".join(members), data_text]) + "\n}").encode()


def replace_member(raw: bytes, key: str, value: str) -> bytes:
    env = json.loads(raw)
    text = raw.decode()
    old = f'"{key}":{json.dumps(env[key])}'
    assert old in text, (old, text[:300])
    return text.replace(old, f'"{key}":{value}', 1).encode()


def drop_member(raw: bytes, key: str) -> bytes:
    env = json.loads(raw)
    return raw.decode().replace(f'"{key}":{json.dumps(env[key])},', "", 1).encode()


def own_checksum_of_raw_data(raw: bytes) -> bytes:
    """Data that is not canonical, with the checksum of those very bytes recorded."""
    data = b'{ "total" : 1e2 }'
    env = json.loads(raw)
    head = raw[: raw.index(b'"data":') + len(b'"data":')]
    head = head.replace(env["checksum"].encode(), b"sha256:" + hashlib.sha256(data).hexdigest().encode())
    return head + data + b"}\n"


#: (case, how the daemon's own file is changed, whether it must still be served)
CASES: list[tuple[str, Callable[[bytes], bytes], bool]] = [
    ("as written", lambda raw: raw, True),
    ("reformatted by hand", reformatted, True),
    ("no final newline", lambda raw: raw.rstrip(b"\n"), True),
    (
        "uppercase checksum",
        lambda raw: raw.replace(
            raw[raw.index(b"sha256:") : raw.index(b"sha256:") + 71],
            raw[raw.index(b"sha256:") : raw.index(b"sha256:") + 71].upper().replace(b"SHA256:", b"sha256:"),
        ),
        True,
    ),
    ("an unknown member", lambda raw: raw.replace(b'{"format"', b'{"comment":{"by":"hand"},"format"', 1), True),
    ("no last_fetch member", lambda raw: drop_member(raw, "last_fetch"), True),
    ("saved_at with an offset", lambda raw: replace_member(raw, "saved_at", '"2026-01-01T12:00:00.5+02:00"'), True),
    ("non-canonical data with its own checksum", own_checksum_of_raw_data, True),
    ("a digit of the data changed", lambda raw: raw.replace(b'"total":100', b'"total":101'), False),
    ("a character of the data changed", lambda raw: raw.replace("Zoë".encode(), b"Zoe"), False),
    ("reformatted and changed", lambda raw: reformatted(raw).replace(b"2.25", b"2.5"), False),
    ("another project", lambda raw: replace_member(raw, "project", '"someone-else"'), False),
    ("another cache's file", lambda raw: replace_member(raw, "name", '"c00"'), False),
    ("version 0", lambda raw: replace_member(raw, "version", "0"), False),
    ("version 1.0", lambda raw: replace_member(raw, "version", "1.0"), False),
    ("format 2", lambda raw: replace_member(raw, "format", "2"), False),
    ("no saved_at", lambda raw: drop_member(raw, "saved_at"), False),
    ("saved_at not a time", lambda raw: replace_member(raw, "saved_at", '"yesterday"'), False),
    ("a checksum that is not one", lambda raw: replace_member(raw, "checksum", '"sha256:abc"'), False),
    ("version twice", lambda raw: raw.replace(b'"version"', b'"version":1,"version"', 1), False),
    ("garbage after the object", lambda raw: raw + b"x", False),
    ("cut in the middle", lambda raw: raw[: len(raw) // 2], False),
    ("empty", lambda raw: b"", False),
    ("a byte-order mark", lambda raw: b"\xef\xbb\xbf" + raw, False),
    ("NaN in the data", lambda raw: raw.replace(b'"total":100', b'"total":NaN'), False),
]


def test_the_reader_accepts_and_refuses_what_the_daemon_does() -> None:
    names = [f"c{i:02}" for i in range(len(CASES))]
    tables = "".join(f'[[caches]]\nname = "{n}"\n' for n in names)
    with Daemon(binary(), tables=tables) as daemon:
        with httpx.Client(base_url=daemon.url) as http:
            for name in names:
                assert http.put(f"/v1/caches/{name}", json=DOC).status_code == 200
        daemon.stop()
        bodies: dict[str, bytes | None] = {}
        for (case, change, _), name in zip(CASES, names, strict=True):
            path = daemon.cache_file(name)
            path.write_bytes(change(path.read_bytes()))
            try:
                bodies[case] = envelope.read(daemon.data_dir, name).body
            except envelope.EnvelopeError:
                bodies[case] = None
        daemon.start()
        with httpx.Client(base_url=daemon.url) as http:
            for (case, _, expected), name in zip(CASES, names, strict=True):
                answer = http.get(f"/v1/caches/{name}")
                assert answer.status_code in (200, 503), (case, answer.text)
                served = answer.status_code == 200
                assert (bodies[case] is not None, served) == (expected, expected), case
                if served:
                    assert answer.headers["x-cache-tier"] == "file", case
                    assert bodies[case] == answer.content, f"{case}: the body the daemon serves"
