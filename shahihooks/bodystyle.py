"""Body styles: the bytes a receiver that re-encodes the parsed body will compute an HMAC over.

`standard` is the body as shahihooks writes it (compact UTF-8 JSON, numbers as JavaScript
writes them): the page's Node.js handler, `JSON.stringify(req.body)`, gets it back.

`php` is exactly what PHP 7.1+/8.x writes for `json_encode(json_decode($body, true))` with
default flags and `serialize_precision = -1` — what the page's PHP and Laravel handlers sign:

- `/` as `\\/`; every character outside ASCII as lowercase `\\uXXXX` (a surrogate pair beyond
  the BMP); control characters as `\\b \\f \\n \\r \\t` or `\\u00XX`; DEL as it is;
- `{}` as `[]`, and an object whose keys are "0".."n-1" in that order as an array;
- integers beyond PHP_INT_MAX as floats; floats as PHP writes them (`1.0` as `1`, `-0.0` as
  `-0`, `1e-5` as `1.0e-5`, `1e17` as `1.0e+17`);
- a duplicate key keeps its first place and its last value.

Bodies PHP cannot round-trip (more than 511 nested arrays/objects, a number beyond a double,
a lone surrogate, invalid UTF-8) raise PayloadError: no signature can match. Every rule is
checked against real PHP by tests/test_php.py.
"""

from __future__ import annotations

import enum
import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from shahihooks.errors import (
    ConfigurationError,
    InvalidSignature,
    MissingSignature,
    PayloadError,
)
from shahihooks.signing import SIGNATURE_HEADER, Secrets, page_signature, secret_key


class BodyStyle(enum.StrEnum):
    STANDARD = "standard"
    PHP = "php"


PHP_INT_MAX = 2**63 - 1
PHP_INT_MIN = -(2**63)
# json_decode($body, true) fails (and gives null) past 511 nested arrays/objects.
PHP_MAX_DEPTH = 511
# php_gcvt with serialize_precision -1: exponential form outside 10^-4 <= |x| < 10^17.
_PHP_PRECISION = 17

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_encode_ascii = json.encoder.encode_basestring_ascii


def body_style(value: object) -> BodyStyle:
    """`value` as a BodyStyle, or a ConfigurationError naming it."""
    if isinstance(value, BodyStyle):
        return value
    text = value.strip().lower() if isinstance(value, str) else ""
    try:
        return BodyStyle(text)
    except ValueError:
        known = ", ".join(s.value for s in BodyStyle)
        raise ConfigurationError(
            f"body style {value!r} is not one of: {known} "
            "('php' for receivers written from the page's PHP or Laravel handler)"
        ) from None


def render(body: bytes, style: BodyStyle | str) -> bytes:
    """The bytes to send (and sign) in `style`, from the standard body bytes."""
    if body_style(style) is BodyStyle.STANDARD:
        return body
    return php_reencode(body)


def php_reencode(body: bytes) -> bytes:
    """What PHP's `json_encode(json_decode($body, true))` writes; PayloadError if it fails."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"the body is not UTF-8 (byte {exc.start}): PHP's json_decode refuses it"
        ) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise PayloadError("the body nests too deeply for PHP's json_decode") from None
    except ValueError as exc:
        raise PayloadError(f"the body is not JSON that PHP decodes: {exc}") from None
    return _php_json(value, bool(_MAYBE_SURROGATE.search(body))).encode("ascii")


def php_float(value: float) -> str:
    """A float as PHP's json_encode writes it (serialize_precision -1)."""
    if not math.isfinite(value):
        raise PayloadError(f"a number is beyond a PHP float ({value}), which json_encode refuses")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")  # shortest round-trip digits
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac
    digits = raw.lstrip("0")
    point = len(whole) - (len(raw) - len(digits)) + int(exp or 0)  # value = 0.digits × 10^point
    digits = digits.rstrip("0")
    if point < -3 or point > _PHP_PRECISION:
        e = point - 1
        return f"{sign}{digits[0]}.{digits[1:] or '0'}e{'+' if e >= 0 else '-'}{abs(e)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if len(digits) <= point:
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def php_string(text: str) -> str:
    """A string as PHP's json_encode writes it with default flags."""
    if "\x7f" in text:  # Python escapes DEL, PHP does not
        return '"' + "\x7f".join(php_string(part)[1:-1] for part in text.split("\x7f")) + '"'
    return str(_encode_ascii(text)).replace("/", "\\/")


def verify_like_php(body: bytes, headers: Mapping[str, str], secrets: Secrets) -> Any:
    """Check a delivery the way the page's PHP handler does, and return the parsed body.

    `hash_hmac('sha256', json_encode(json_decode($body, true)), $secret)` compared with the
    `X-Shahi-Assist-Signature` header without its `sha256=`. Raises a VerificationError.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    header = lower.get(SIGNATURE_HEADER.lower())
    if header is None:
        raise MissingSignature(f"no {SIGNATURE_HEADER} header (the page's PHP handler reads it)")
    try:
        reencoded = php_reencode(body)
    except PayloadError as exc:
        raise InvalidSignature(f"PHP's json_encode(json_decode(body)) fails: {exc}") from None
    offered = header.replace("sha256=", "").encode()
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    for key in keys:
        expected = page_signature(reencoded, secret_key(key)).removeprefix("sha256=")
        if hmac.compare_digest(expected.encode(), offered):
            return json.loads(body)
    raise InvalidSignature(
        f"{SIGNATURE_HEADER} {header[:80]!r} does not match json_encode(json_decode(body)) "
        f"under any of the {len(keys)} secret(s) given"
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _php_json(root: object, check_surrogates: bool) -> str:
    """json_encode of what json_decode($body, true) built (iterative: deep bodies are fine)."""
    out: list[str] = []
    stack: list[tuple[str, object]] = [("", root)]  # ("", a value) or (literal text, None)
    depth = 0
    while stack:
        text, item = stack.pop()
        if text:
            depth -= text in ("]", "}")
            out.append(text)
        elif isinstance(item, str):
            out.append(_string(item, check_surrogates))
        elif item is None or isinstance(item, bool):
            out.append("null" if item is None else ("true" if item else "false"))
        elif isinstance(item, int):
            out.append(_integer(item))
        elif isinstance(item, float):
            out.append(php_float(item))
        elif isinstance(item, dict) and not _is_list(item):
            depth = _deeper(depth)
            out.append("{")
            stack.append(("}", None))
            members = list(item.items())
            for i in range(len(members) - 1, -1, -1):
                stack.append(("", members[i][1]))
                stack.append((_string(members[i][0], check_surrogates) + ":", None))
                if i:
                    stack.append((",", None))
        elif isinstance(item, dict | list):  # PHP's array with keys 0..n-1 (or none) is a list
            depth = _deeper(depth)
            values = list(item.values()) if isinstance(item, dict) else item
            out.append("[")
            stack.append(("]", None))
            for i in range(len(values) - 1, -1, -1):
                stack.append(("", values[i]))
                if i:
                    stack.append((",", None))
        else:
            raise PayloadError(f"{item!r} is not a JSON value")
    return "".join(out)


def _deeper(depth: int) -> int:
    if depth >= PHP_MAX_DEPTH:
        raise PayloadError(
            f"the body nests more than {PHP_MAX_DEPTH} arrays/objects deep, where PHP's "
            "json_decode stops"
        )
    return depth + 1


def _integer(value: int) -> str:
    if PHP_INT_MIN <= value <= PHP_INT_MAX:
        return str(value)
    try:
        as_float = float(value)  # PHP parses an integer beyond PHP_INT_MAX as a float
    except OverflowError:
        as_float = math.inf
    if math.isinf(as_float):
        raise PayloadError(
            f"the integer {str(value)[:30]}… is beyond a PHP float, which json_encode refuses"
        )
    return php_float(as_float)


def _string(text: str, check_surrogates: bool) -> str:
    if check_surrogates and _LONE_SURROGATE.search(text):
        raise PayloadError(
            f"the string {text[:40]!r} holds a lone UTF-16 surrogate, which PHP's json_decode "
            "refuses"
        )
    return php_string(text)


def _is_list(members: dict[str, Any]) -> bool:
    return all(key == str(i) for i, key in enumerate(members))
