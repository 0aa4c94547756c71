"""Signing outgoing bodies and verifying received ones, in both schemes.

- The help page's scheme: `X-Shahi-Assist-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
- Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`,
  with `webhook-id` and `webhook-timestamp`; a `whsec_` secret is base64 of the key.

During a rotation several secrets are active: `webhook-signature` carries one signature per
secret (space-separated, as the standard says); the page's header carries the first secret's
only, because the page's receivers compare the header against a single value.

A received delivery that carries any `webhook-*` header is verified by the Standard
Webhooks scheme only (its timestamp is what refuses a replay); removing those headers to
fall back to the page's scheme, which signs no time, would otherwise pass.

A secret shorter than 16 bytes (after `whsec_` decoding) is refused: one captured delivery
is enough to guess a short secret offline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from shahihooks.errors import (
    ConfigurationError,
    InvalidSignature,
    MissingSignature,
    TimestampOutOfRange,
    VerificationError,
)

SIGNATURE_HEADER = "X-Shahi-Assist-Signature"
EVENT_HEADER = "X-Shahi-Assist-Event"
DELIVERY_HEADER = "X-Shahi-Assist-Delivery"
ATTEMPT_HEADER = "X-Shahi-Assist-Attempt"
DEFAULT_TOLERANCE_S = 300
MIN_SECRET_BYTES = 16
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658

Secrets = str | bytes | Sequence[str | bytes]


def secret_key(secret: str | bytes, name: str = "the webhook secret") -> bytes:
    """The HMAC key of a secret: a `whsec_` secret is base64 of the key, others are UTF-8.

    A key shorter than MIN_SECRET_BYTES is a ConfigurationError naming `name` (the
    setting or option it came from), never the value.
    """
    if isinstance(secret, str) and secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_") :], validate=True)
        except binascii.Error:
            raise ConfigurationError(
                f"{name}: a secret starting with 'whsec_' must be followed by base64 "
                "(the Standard Webhooks form); this one is not valid base64"
            ) from None
        if not key:
            raise ConfigurationError(f"{name} is 'whsec_' with nothing after it: no key")
    elif isinstance(secret, str):
        key = secret.encode("utf-8")
    elif isinstance(secret, bytes):
        key = secret
    else:
        raise ConfigurationError(f"{name} must be a string, got {type(secret).__name__}")
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{name} is too short: {len(key)} bytes, and at least {MIN_SECRET_BYTES} are "
            "needed (make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def secret_keys(secrets: Secrets, name: str = "the webhook secret") -> list[bytes]:
    items = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not items:
        raise ConfigurationError(f"no secret given: at least one webhook secret is needed ({name})")
    return [secret_key(s, name) for s in items]


def page_signature(body: bytes, secret: str | bytes) -> str:
    """`sha256=<hex>`: the help page's signature of the exact body bytes."""
    return "sha256=" + hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest()


def standard_signature(body: bytes, msg_id: str, timestamp: int, secret: str | bytes) -> str:
    """`v1,<base64>`: the Standard Webhooks signature of `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def sign_headers(
    body: bytes,
    *,
    delivery_id: str,
    event: str,
    secrets: Secrets,
    attempt: int = 1,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Every header a delivery carries, signed with each active secret."""
    keys = secret_keys(secrets)
    ts = int(time.time()) if timestamp is None else timestamp
    standard = " ".join(standard_signature(body, delivery_id, ts, k) for k in keys)
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: page_signature(body, keys[0]),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": standard,
    }


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: Secrets,
    *,
    tolerance_s: int | None = DEFAULT_TOLERANCE_S,
    now: float | None = None,
    standard_only: bool = False,
) -> Any:
    """Check a received delivery and return its parsed JSON body.

    When any `webhook-*` header is present, the Standard Webhooks headers must verify (with
    the timestamp within `tolerance_s` of now; None: no age check, for a saved delivery):
    there is no fall-back to the page's header.
    Without them, the page's `X-Shahi-Assist-Signature` is checked, unless `standard_only`.
    Any of several secrets may match (rotation). Raises a VerificationError subclass on a
    bad delivery.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lower = _lower(headers)
    keys = secret_keys(secret)
    if _is_standard(lower):
        _verify_standard(raw, lower, keys, tolerance_s, time.time() if now is None else now)
    elif standard_only:
        raise MissingSignature(
            "no webhook-signature header: this receiver takes Standard Webhooks deliveries "
            f"only (got headers: {', '.join(sorted(lower)) or 'none'})"
        )
    elif SIGNATURE_HEADER.lower() in lower:
        _verify_page(raw, lower[SIGNATURE_HEADER.lower()], keys)
    else:
        raise MissingSignature(
            f"no signature: expected a {SIGNATURE_HEADER} or webhook-signature header "
            f"(got headers: {', '.join(sorted(lower)) or 'none'})"
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise VerificationError(f"the signature matches but the body is not JSON: {exc}") from None
    except RecursionError:
        raise VerificationError("the signature matches but the body nests too deeply") from None


def signed_id(payload: Any, headers: Mapping[str, str]) -> str:
    """The id that a delivery `verify` passed is signed with: its `webhook-id` (Standard
    Webhooks), or the body's `id` field (the page's scheme signs the body only); "" when
    the body has no string `id`."""
    lower = _lower(headers)
    if _is_standard(lower):
        return lower["webhook-id"]
    body_id = payload.get("id") if isinstance(payload, dict) else None
    return body_id if isinstance(body_id, str) else ""


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _is_standard(lower: Mapping[str, str]) -> bool:
    """Any `webhook-*` header: verified by the Standard Webhooks scheme only."""
    return any(name.startswith("webhook-") for name in lower)


def _verify_page(body: bytes, header: str, keys: list[bytes]) -> None:
    offered = [s.strip() for s in header.replace(",", " ").split() if s.strip()]
    for key in keys:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected.encode(), s.encode()) for s in offered):
            return
    raise InvalidSignature(
        f"{SIGNATURE_HEADER} {header[:80]!r} does not match the body under any of the "
        f"{len(keys)} secret(s) given"
    )


def parse_timestamp(raw: str) -> int:
    """A `webhook-timestamp` as Unix seconds: 1 to MAX_TIMESTAMP_DIGITS ASCII digits.

    Checked before any arithmetic: a 400-digit value would overflow a float (an
    OverflowError, not a VerificationError, and a receiver's 500), and `int()` also takes
    signs, spaces, underscores and non-ASCII digits that no sender writes.
    """
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_TIMESTAMP_DIGITS):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise TimestampOutOfRange(
            f"webhook-timestamp {shown!r} is not a number of seconds (1 to "
            f"{MAX_TIMESTAMP_DIGITS} ASCII digits)"
        )
    return int(raw)


def _verify_standard(
    body: bytes, headers: dict[str, str], keys: list[bytes], tolerance_s: int | None, now: float
) -> None:
    msg_id = headers.get("webhook-id", "")
    raw_ts = headers.get("webhook-timestamp", "")
    if not msg_id or not raw_ts or "webhook-signature" not in headers:
        present = ", ".join(sorted(h for h in headers if h.startswith("webhook-")))
        raise MissingSignature(
            "a Standard Webhooks delivery needs webhook-id, webhook-timestamp and "
            f"webhook-signature (got: {present})"
        )
    ts = parse_timestamp(raw_ts)
    if tolerance_s is not None and abs(now - ts) > tolerance_s:
        age = int(now - ts)
        raise TimestampOutOfRange(
            f"webhook-timestamp {ts} is {abs(age)} s in the "
            f"{'past' if age > 0 else 'future'}, outside the ±{tolerance_s} s tolerance"
        )
    offered = [p[3:] for p in headers["webhook-signature"].split() if p.startswith("v1,")]
    signed = f"{msg_id}.{raw_ts}.".encode() + body
    for key in keys:
        mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(mac, s.encode()) for s in offered):
            return
    raise InvalidSignature(
        f"webhook-signature for webhook-id {msg_id!r} does not match the body under any "
        f"of the {len(keys)} secret(s) given"
    )


def fingerprint(secrets: Secrets) -> str:
    """A short public name of the secret that signs (the first of `secrets`), stored with
    each delivery so that a worker never signs another app's delivery with its own secret."""
    if not secrets:
        return ""
    first = secrets if isinstance(secrets, str | bytes) else secrets[0]
    raw = first.encode("utf-8") if isinstance(first, str) else first
    return hashlib.sha256(b"shahihooks-fingerprint:" + raw).hexdigest()[:16]
