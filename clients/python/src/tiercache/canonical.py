"""The canonical JSON form: what the daemon checksums, stores and serves.

Object keys sorted by code point, no insignificant white space, strings escaped
minimally, and numbers in one normal form: an integer that fits 64 bits (signed, or
unsigned when positive) is written as an integer; any other number is read as the
nearest double and written as an integer when it is integral and below 2**63 in
magnitude, else as the shortest decimal that reads back as the same double (plain
notation for decimal exponents -5 to 15, `1.5e+300` style otherwise); `-0` is `0`.
docs/envelope.md in the daemon's repository is the full description; this module
produces the same bytes, byte for byte.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["CanonicalError", "canonicalize", "dumps"]

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1
_I64_LIMIT = 2.0**63
#: Most arrays and objects nested in one another that the daemon canonicalises
#: (serde_json's recursion limit of 128 counts the one that fails).
MAX_DEPTH = 127


class CanonicalError(ValueError):
    """The input is not JSON the daemon would accept (or cannot be put in canonical form)."""


class _Number(str):
    """A number already in canonical text, kept apart from strings while parsing."""

    __slots__ = ()


def _refuse_constant(token: str) -> Any:
    raise CanonicalError(f"{token} is not JSON")


def _integer(token: str) -> _Number:
    try:
        n = int(token)
    except ValueError as e:  # more digits than Python converts; far out of range anyway
        raise CanonicalError(f"number out of range: {token[:20]}...") from e
    if _I64_MIN <= n <= _U64_MAX:
        return _Number(str(n))
    try:
        return _Number(_double(float(n)))
    except OverflowError as e:
        raise CanonicalError(f"number out of range: {token[:20]}...") from e


def _decimal(token: str) -> _Number:
    f = float(token)
    if math.isinf(f):
        raise CanonicalError(f"number out of range: {token[:20]}")
    return _Number(_double(f))


def _double(f: float) -> str:
    """A double as the daemon writes it (see the module documentation)."""
    if f == 0.0:
        return "0"
    if f.is_integer() and abs(f) < _I64_LIMIT:
        return str(int(f))
    return _shortest(f)


def _shortest(f: float) -> str:
    """The shortest round-tripping decimal of `f` (Python's `repr` finds the digits), laid
    out as the daemon's formatter lays it out: plain for decimal exponents -5 to 15,
    else `D.DDDe+X` / `De-X` (no padding of the exponent)."""
    text = repr(f)
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exp_text = text.lstrip("-").partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    exponent = int(exp_text) if exp_text else 0
    all_digits = int_part + frac_part
    digits = all_digits.lstrip("0")
    trailing = len(digits) - len(digits.rstrip("0"))
    digits = digits.rstrip("0")
    # value = int(digits) * 10**power; sci = the exponent of its first digit.
    power = exponent - len(frac_part) + trailing
    n = len(digits)
    sci = n - 1 + power
    if -5 <= sci <= 15:
        if n - 1 <= sci:
            body = digits + "0" * (sci - (n - 1)) + ".0"
        elif sci >= 0:
            body = digits[: sci + 1] + "." + digits[sci + 1 :]
        else:
            body = "0." + "0" * (-sci - 1) + digits
    else:
        fraction = "." + digits[1:] if n > 1 else ""
        body = f"{digits[0]}{fraction}e{'+' if sci >= 0 else '-'}{abs(sci)}"
    return sign + body


def _parse(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_int=_integer,
            parse_float=_decimal,
            parse_constant=_refuse_constant,
        )
    except CanonicalError:
        raise
    except (ValueError, RecursionError) as e:
        raise CanonicalError(f"not JSON: {e}") from e


def _write(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, _Number):
        out.append(value)
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise CanonicalError(f"more than {MAX_DEPTH} arrays and objects nested")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise CanonicalError(f"more than {MAX_DEPTH} arrays and objects nested")
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, bool | int | float):  # pragma: no cover - the parser never yields these
        raise CanonicalError(f"unexpected number object {value!r}")
    else:
        raise CanonicalError(f"not a JSON value: {type(value).__name__}")


def _encode(out: list[str]) -> bytes:
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a `\\ud800` escape
        raise CanonicalError(f"not valid Unicode: {e.reason}") from e


def canonicalize(text: str | bytes) -> bytes:
    """The canonical bytes of the JSON text `text`, as the daemon computes them.

    Raises `CanonicalError` for anything the daemon refuses: text that is not JSON
    (`NaN`, trailing data, a byte-order mark, invalid UTF-8, a lone surrogate), a number
    out of the range of a double, or more than 127 arrays and objects nested.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CanonicalError(f"not UTF-8: {e}") from e
    out: list[str] = []
    _write(_parse(text), out, 0)
    return _encode(out)


def _from_python(value: Any, depth: int) -> Any:
    """A Python value with its numbers replaced by their canonical text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return _integer(str(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CanonicalError(f"{value} is not JSON")
        return _Number(_double(value))
    if depth >= MAX_DEPTH:
        raise CanonicalError(f"more than {MAX_DEPTH} arrays and objects nested")
    if isinstance(value, list | tuple):
        return [_from_python(v, depth + 1) for v in value]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalError(f"object keys must be strings, not {type(k).__name__}")
            result[k] = _from_python(v, depth + 1)
        return result
    raise CanonicalError(f"not a JSON value: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """The canonical bytes of a Python value (dicts with string keys, lists, tuples,
    strings, numbers, booleans, `None`): what the daemon stores when it is saved."""
    out: list[str] = []
    _write(_from_python(value, 0), out, 0)
    return _encode(out)
