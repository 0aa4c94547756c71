"""Signatures: known answers computed here with hmac/hashlib/base64, and both schemes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC

import pytest
import standardwebhooks

import shahihooks
from shahihooks.signing import sign_headers

BODY = b'{"id":"evt_1-ab","event":"ticket.created","timestamp":1638019200,"data":{"t":1}}'
SECRET = "yourwebhooksecret"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
NEW = "new-secret-0123456789"
OLD = "old-secret-0123456789"


def page_sig(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def std_sig(body: bytes, msg_id: str, ts: int, key: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_page_signature_is_hmac_sha256_hex_of_the_exact_body() -> None:
    headers = sign_headers(BODY, delivery_id="evt_1-ab", event="ticket.created", secrets=SECRET)
    assert headers["X-Shahi-Assist-Signature"] == page_sig(BODY, SECRET.encode())


def test_standard_signature_covers_id_timestamp_and_body() -> None:
    headers = sign_headers(
        BODY, delivery_id="evt_1-ab", event="ticket.created", secrets=SECRET, timestamp=1700000000
    )
    assert headers["webhook-id"] == "evt_1-ab"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"] == std_sig(BODY, "evt_1-ab", 1700000000, SECRET.encode())


def test_whsec_secret_is_base64_of_the_key() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=WHSEC, timestamp=5)
    assert headers["webhook-signature"] == std_sig(BODY, "m", 5, b"k" * 32)
    assert headers["X-Shahi-Assist-Signature"] == page_sig(BODY, b"k" * 32)


def test_rotation_signs_with_every_secret_and_the_page_header_with_the_first() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=[NEW, OLD], timestamp=5)
    assert headers["webhook-signature"].split(" ") == [
        std_sig(BODY, "m", 5, NEW.encode()),
        std_sig(BODY, "m", 5, OLD.encode()),
    ]
    assert headers["X-Shahi-Assist-Signature"] == page_sig(BODY, NEW.encode())


def test_other_headers_name_the_event_delivery_and_attempt() -> None:
    headers = sign_headers(
        BODY, delivery_id="d-1", event="ticket.closed", secrets=SECRET, attempt=3
    )
    assert headers["X-Shahi-Assist-Event"] == "ticket.closed"
    assert headers["X-Shahi-Assist-Delivery"] == "d-1"
    assert headers["X-Shahi-Assist-Attempt"] == "3"
    assert headers["Content-Type"] == "application/json"


def test_the_standardwebhooks_library_verifies_our_headers() -> None:
    headers = sign_headers(BODY, delivery_id="evt_1-ab", event="ticket.created", secrets=WHSEC)
    payload = standardwebhooks.Webhook(WHSEC).verify(BODY, headers)
    assert payload["event"] == "ticket.created"


def test_our_verify_accepts_what_the_standardwebhooks_library_signs() -> None:
    now = int(time.time())
    from datetime import datetime

    sig = standardwebhooks.Webhook(WHSEC).sign(
        "msg_9", datetime.fromtimestamp(now, UTC), BODY.decode()
    )
    headers = {"webhook-id": "msg_9", "webhook-timestamp": str(now), "webhook-signature": sig}
    assert shahihooks.verify(BODY, headers, WHSEC)["data"] == {"t": 1}


def test_verify_accepts_the_page_header_alone() -> None:
    headers = {"X-Shahi-Assist-Signature": page_sig(BODY, SECRET.encode())}
    assert shahihooks.verify(BODY, headers, SECRET)["event"] == "ticket.created"


def test_verify_accepts_any_of_several_secrets() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=OLD)
    assert shahihooks.verify(BODY, headers, [NEW, OLD])["id"] == "evt_1-ab"


def test_verify_headers_are_case_insensitive() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET)
    upper = {k.upper(): v for k, v in headers.items()}
    assert shahihooks.verify(BODY, upper, SECRET)


def test_wrong_secret_fails() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET)
    with pytest.raises(shahihooks.InvalidSignature, match="webhook-id 'm'"):
        shahihooks.verify(BODY, headers, "other-secret-0123456789")


def test_tampered_body_fails_in_both_schemes() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET)
    tampered = BODY.replace(b'"t":1', b'"t":2')
    with pytest.raises(shahihooks.InvalidSignature):
        shahihooks.verify(tampered, headers, SECRET)
    page_only = {"X-Shahi-Assist-Signature": headers["X-Shahi-Assist-Signature"]}
    with pytest.raises(shahihooks.InvalidSignature, match="X-Shahi-Assist-Signature"):
        shahihooks.verify(tampered, page_only, SECRET)


def test_old_timestamp_fails() -> None:
    old = int(time.time()) - 301
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET, timestamp=old)
    with pytest.raises(shahihooks.TimestampOutOfRange, match=r"in the past, outside the ±300 s"):
        shahihooks.verify(BODY, headers, SECRET)


def test_future_timestamp_fails() -> None:
    future = int(time.time()) + 301
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET, timestamp=future)
    with pytest.raises(shahihooks.TimestampOutOfRange, match="in the future"):
        shahihooks.verify(BODY, headers, SECRET)


def test_timestamp_within_tolerance_passes() -> None:
    ts = int(time.time()) - 250
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET, timestamp=ts)
    assert shahihooks.verify(BODY, headers, SECRET)


def test_non_numeric_timestamp_fails_naming_it() -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET)
    headers["webhook-timestamp"] = "yesterday"
    with pytest.raises(shahihooks.TimestampOutOfRange, match="'yesterday'"):
        shahihooks.verify(BODY, headers, SECRET)


def test_missing_signature_fails_listing_what_came() -> None:
    with pytest.raises(shahihooks.MissingSignature, match="content-type"):
        shahihooks.verify(BODY, {"Content-Type": "application/json"}, SECRET)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:-1],
        lambda s: s + "0",
        lambda s: s.upper(),
        lambda s: s[:7] + s[7:][::-1],
    ],
    ids=["truncated", "extended", "case-changed", "reordered"],
)
def test_altered_page_signatures_fail(mutate) -> None:  # type: ignore[no-untyped-def]
    good = page_sig(BODY, SECRET.encode())
    with pytest.raises(shahihooks.InvalidSignature):
        shahihooks.verify(BODY, {"X-Shahi-Assist-Signature": mutate(good)}, SECRET)


def test_bad_whsec_secret_is_a_configuration_error_without_the_secret() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="not valid base64") as info:
        sign_headers(BODY, delivery_id="m", event="e.x", secrets="whsec_!!notbase64!!")
    assert "notbase64" not in str(info.value)


def test_empty_secret_list_is_refused() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="at least one"):
        sign_headers(BODY, delivery_id="m", event="e.x", secrets=[])


@pytest.mark.parametrize(
    "raw",
    ["9" * 400, "1" * 13, "١٧٠٠٠٠٠٠٠٠", "-1700000000", "+1700000000", " 1700000000", "1_700_000"],
    ids=["400-digits", "13-digits", "arabic-indic", "negative", "plus", "space", "underscores"],
)
def test_a_malformed_timestamp_is_a_verification_error_before_any_arithmetic(raw: str) -> None:
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET)
    headers["webhook-timestamp"] = raw
    with pytest.raises(shahihooks.TimestampOutOfRange, match="not a number of seconds"):
        shahihooks.verify(BODY, headers, SECRET)
    with pytest.raises(shahihooks.VerificationError):
        shahihooks.verify(BODY, headers, SECRET, tolerance_s=None)


def test_no_tolerance_skips_the_age_check_and_zero_is_strict() -> None:
    old = int(time.time()) - 10 * 365 * 86_400
    headers = sign_headers(BODY, delivery_id="m", event="e.x", secrets=SECRET, timestamp=old)
    assert shahihooks.verify(BODY, headers, SECRET, tolerance_s=None)
    with pytest.raises(shahihooks.TimestampOutOfRange, match="±0 s"):
        shahihooks.verify(BODY, headers, SECRET, tolerance_s=0, now=old + 1)
    assert shahihooks.verify(BODY, headers, SECRET, tolerance_s=0, now=old)
