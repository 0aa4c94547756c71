"""The envelope and its JSON: serialised once, compactly, as JavaScript would write it.

The body is `{"id","event","timestamp","site_url","data"}` in compact UTF-8 JSON. The data is
encoded once at `emit`; each delivery's body is that encoding wrapped in its own envelope
(`envelope()`), so N endpoints cost one encoding, not N.

Values JSON has no type for are encoded the way Django's and DRF's encoders do:
datetimes as ISO 8601 (UTC written as `Z`), dates and times as ISO 8601, UUIDs as their
hyphenated string, Decimals as strings (so no digit is lost), enums as their value, tuples
as arrays. Sets, bytes and other objects are refused with the path of the bad value.

Numbers are written in JavaScript's form (`1.0` as `1`, `1e-7` not `1e-07`), so a receiver
that re-serialises the parsed body with `JSON.stringify` gets the same bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from shahihooks.errors import PayloadError, PayloadTooLarge

MAX_BODY_BYTES = 1_048_576

# Python and JavaScript agree on every number except these forms: integral floats
# (`1.0`, `-0.0`, `1e+16`) and small ones (`1e-05`). Finding none in the fast encoding
# (the C encoder) proves it already matches; a hit (maybe a false one inside a string)
# sends the data through the careful encoder.
_PY_ONLY_NUMBER = re.compile(rb"\d\.0[,\]}]|\de[-+]")


def encode_value(value: object) -> str:
    """A JSON-compatible rendering of the types JSON lacks (the `default` hook)."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise PayloadError(f"Decimal {value} has no JSON form")
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value  # type: ignore[no-any-return]
    raise TypeError(type(value).__name__)


def encode_data(data: object) -> str:
    """Encode the event data once; PayloadError names what cannot be encoded, and where."""
    try:
        fast = json.dumps(
            data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=encode_value
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(_describe_bad_value(data, exc)) from None
    except RecursionError:
        raise PayloadError("data is nested too deeply (or refers to itself)") from None
    try:
        raw = fast.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"data contains a lone surrogate {fast[exc.start]!r}") from None
    if not _PY_ONLY_NUMBER.search(raw):
        return fast
    return _JS_ENCODER.encode(data)


def envelope(delivery_id: str, event: str, timestamp: int, site_url: str, data_json: str) -> bytes:
    """The exact body bytes of one delivery: compact JSON, keys in a fixed order."""
    head = json.dumps(
        {"id": delivery_id, "event": event, "timestamp": timestamp, "site_url": site_url},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return (head[:-1] + ',"data":' + data_json + "}").encode("utf-8")


def envelope_overhead(event: str, site_url: str) -> int:
    """Bytes the envelope adds around the data (with the longest delivery id in use)."""
    return len(envelope("x" * 64, event, 10**10, site_url, "").decode("utf-8").encode())


def check_size(data_json: str, event: str, site_url: str, limit: int = MAX_BODY_BYTES) -> int:
    """The body size in bytes; PayloadTooLarge if it is over `limit`."""
    size = len(data_json.encode("utf-8")) + envelope_overhead(event, site_url)
    if size > limit:
        raise PayloadTooLarge(
            f"the {event} body would be {size:,} bytes, over the limit of {limit:,} bytes "
            "(the page's 1 MB): send a reference (an id or URL) instead of the content"
        )
    return size


def js_number(value: float) -> str:
    """A float written as JavaScript's Number#toString writes it (ECMA-262 Number::toString)."""
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")  # shortest round-trip digits
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) - (len(whole + frac) - len(digits)) + int(exp or 0)
    d = digits.rstrip("0")
    k = len(d)
    if k <= point <= 21:
        return sign + d + "0" * (point - k)
    if 0 < point <= 21:
        return sign + d[:point] + "." + d[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + d
    e = point - 1
    tail = "." + d[1:] if k > 1 else ""
    return f"{sign}{d[0]}{tail}e{'+' if e > 0 else '-'}{abs(e)}"


class _JSEncoder(json.JSONEncoder):
    """The pure-Python encoder, whose float formatting can be replaced."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        def floatstr(value: float, *_: object) -> str:
            if math.isnan(value) or math.isinf(value):
                raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
            return js_number(value)

        return json.encoder._make_iterencode(  # type: ignore[attr-defined]
            {} if self.check_circular else None,
            self.default,
            json.encoder.py_encode_basestring,
            self.indent,
            floatstr,
            self.key_separator,
            self.item_separator,
            self.sort_keys,
            self.skipkeys,
            _one_shot,
        )(o, 0)


_JS_ENCODER = _JSEncoder(separators=(",", ":"), ensure_ascii=False, default=encode_value)


def _describe_bad_value(data: object, exc: Exception) -> str:
    if "Circular reference" in str(exc):
        return "data refers to itself (a circular reference) and has no JSON form"
    try:
        path, bad = _find_bad_value(data, "data")
    except RecursionError:
        return "data is nested too deeply to encode"
    if bad is not None:
        kind = type(bad).__name__
        hint = " (use a list)" if isinstance(bad, set | frozenset) else ""
        return f"{path} is a {kind} ({bad!r:.80}), which has no JSON form{hint}"
    return f"data cannot be encoded as JSON: {exc}"


def _find_bad_value(value: object, path: str) -> tuple[str, object | None]:
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                return f"{path} key {k!r}", k
            found = _find_bad_value(v, f"{path}[{k!r}]")
            if found[1] is not None:
                return found
        return path, None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _find_bad_value(v, f"{path}[{i}]")
            if found[1] is not None:
                return found
        return path, None
    if value is None or isinstance(value, str | int | float | bool):
        return path, None
    try:
        encode_value(value)
    except (TypeError, PayloadError):
        return path, value
    return path, None
