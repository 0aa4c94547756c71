"""Property-based: any input to emit or the settings loader either works or raises a
shahihooks error with a message, never another exception and never a partial enqueue;
signatures reject every small alteration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import shahihooks
from shahihooks.settings import _READERS, Settings
from shahihooks.signing import sign_headers

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=4),
    st.sets(st.integers(), max_size=2),
    st.datetimes(),
    st.uuids(),
    st.decimals(),
    st.complex_numbers(),
)
data_strategy = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.tuples()), inner, max_size=4
        ),
        st.tuples(inner, inner),
    ),
    max_leaves=12,
)
event_strategy = st.one_of(
    st.sampled_from(["ticket.created", "article.viewed", "agent.login"]),
    st.text(max_size=20),
    st.integers(),
    st.none(),
)


def queued_and_stored(client: redis.Redis, s: Settings) -> tuple[int, int]:
    return client.llen(s.queue), len(list(client.scan_iter(match=f"{s.prefix}:body:*")))


@pytest.mark.usefixtures("settings")
@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    event=event_strategy,
    data=data_strategy,
    key=st.one_of(st.none(), st.text(max_size=10), st.integers()),
)
def test_emit_succeeds_or_raises_a_clear_shahihooks_error(
    redis_client: redis.Redis, event: object, data: object, key: object
) -> None:
    s = shahihooks.configure(
        shahihooks.settings.current(),
        urls=("https://127.0.0.1:9/p",),
        queue=f"shtest-prop-{uuid.uuid4().hex[:8]}",
    )
    if isinstance(key, str) and key:  # hypothesis repeats values: a repeated key enqueues once
        key = f"{key}-{uuid.uuid4().hex}"
    before = queued_and_stored(redis_client, s)
    try:
        deliveries = shahihooks.emit(event, data, key=key)  # type: ignore[arg-type]
    except shahihooks.ShahihooksError as exc:
        assert str(exc)  # noqa: PT017 - any input: an error is one outcome of two
        assert queued_and_stored(redis_client, s) == before, "no partial enqueue"
    else:
        queued, stored = queued_and_stored(redis_client, s)
        assert queued == before[0] + sum(d.status == "queued" for d in deliveries)
        assert stored <= before[1] + 1
    finally:
        redis_client.delete(s.queue)


names = st.sampled_from(sorted(_READERS))
values = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=3),
)


@hsettings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=6))
def test_settings_load_or_raise_a_configuration_error_naming_the_setting(
    mapping: dict[str, object],
) -> None:
    try:
        Settings.from_mapping(mapping)
    except shahihooks.ShahihooksError as exc:
        assert "SHAHIHOOKS_" in str(exc)  # noqa: PT017 - an error is one outcome of two


SECRET = "prop-secret-0123456789"


@hsettings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=200),
    index=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_a_body_changed_by_one_byte_fails_both_schemes(body: bytes, index: int, bit: int) -> None:
    headers = sign_headers(body, delivery_id="evt_p-1", event="e.x", secrets=SECRET)
    i = index % len(body)
    changed = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]
    for scheme in ("standard", "page"):
        shown = (
            dict(headers)
            if scheme == "standard"
            else {"X-Shahi-Assist-Signature": headers["X-Shahi-Assist-Signature"]}
        )
        with pytest.raises(shahihooks.VerificationError):
            shahihooks.verify(changed, shown, SECRET)


def _alter(signature: str, how: str, n: int) -> str:
    if how == "truncate":
        return signature[: max(0, len(signature) - 1 - n % 8)]
    if how == "extend":
        return signature + "A" * (1 + n % 4)
    if how == "reorder":
        chars = list(signature)
        i, j = n % len(chars), (n * 7 + 3) % len(chars)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    return signature.swapcase()


@hsettings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=64),
    how=st.sampled_from(["truncate", "extend", "reorder", "case"]),
    n=st.integers(0, 10**6),
)
def test_altered_signatures_fail(body: bytes, how: str, n: int) -> None:
    ts = 1_700_000_000
    mac = hmac.new(SECRET.encode(), f"m.{ts}.".encode() + body, hashlib.sha256).digest()
    standard = base64.b64encode(mac).decode()
    page = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    altered_std = _alter(standard, how, n)
    altered_page = _alter(page, how, n)
    if altered_std != standard:
        headers = {
            "webhook-id": "m",
            "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + altered_std,
        }
        with pytest.raises(shahihooks.VerificationError):
            shahihooks.verify(body, headers, SECRET, now=ts)
    if altered_page != page:
        with pytest.raises(shahihooks.VerificationError):
            shahihooks.verify(body, {"X-Shahi-Assist-Signature": "sha256=" + altered_page}, SECRET)
