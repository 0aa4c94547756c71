"""The envelope and its JSON: compact, UTF-8, JavaScript-compatible, refusals named."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid

import pytest

from shahihooks.errors import PayloadError, PayloadTooLarge
from shahihooks.payload import MAX_BODY_BYTES, check_size, encode_data, envelope, js_number


def test_envelope_is_compact_utf8_with_fields_in_order() -> None:
    body = envelope("evt_1-ab", "ticket.created", 1638019200, "https://example.com", '{"a":1}')
    assert body == (
        b'{"id":"evt_1-ab","event":"ticket.created","timestamp":1638019200,'
        b'"site_url":"https://example.com","data":{"a":1}}'
    )


def test_non_ascii_is_kept_as_utf8_and_slashes_are_not_escaped() -> None:
    text = encode_data({"title": "Connexion échouée ✓ 日本", "url": "https://x.io/a/b"})
    assert text == '{"title":"Connexion échouée ✓ 日本","url":"https://x.io/a/b"}'


def test_special_types_are_encoded_as_documented() -> None:
    class Colour(enum.Enum):
        RED = "red"

    data = {
        "aware": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "offset": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "naive": dt.datetime(2026, 1, 2, 3, 4, 5),
        "day": dt.date(2026, 1, 2),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": decimal.Decimal("10.50"),
        "colour": Colour.RED,
        "pair": (1, 2),
    }
    assert json.loads(encode_data(data)) == {
        "aware": "2026-01-02T03:04:05Z",
        "offset": "2026-01-02T03:04:05+02:00",
        "naive": "2026-01-02T03:04:05",
        "day": "2026-01-02",
        "id": "12345678-1234-5678-1234-567812345678",
        "price": "10.50",
        "colour": "red",
        "pair": [1, 2],
    }


@pytest.mark.parametrize(
    ("value", "js"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0.5, "0.5"),
        (1e21, "1e+21"),
        (1e16, "10000000000000000"),
        (1.5e-5, "0.000015"),
        (1e-7, "1e-7"),
        (1.2345e-7, "1.2345e-7"),
        (123456.789, "123456.789"),
        (-2.5e22, "-2.5e+22"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_floats_are_written_as_javascript_writes_them(value: float, js: str) -> None:
    assert js_number(value) == js
    assert encode_data({"n": value}) == '{"n":' + js + "}"


def test_a_float_lookalike_inside_a_string_is_untouched() -> None:
    assert encode_data({"s": "1.0,", "t": "2e-05", "n": 3}) == '{"s":"1.0,","t":"2e-05","n":3}'


def test_set_is_refused_naming_its_path() -> None:
    with pytest.raises(PayloadError, match=r"data\['tags'\] is a set .*use a list"):
        encode_data({"tags": {"a"}})


def test_object_is_refused_naming_its_path_and_type() -> None:
    class Ticket:
        pass

    with pytest.raises(PayloadError, match=r"data\['t'\]\[1\] is a Ticket"):
        encode_data({"t": [1, Ticket()]})


def test_bytes_are_refused() -> None:
    with pytest.raises(PayloadError, match=r"data\['raw'\] is a bytes"):
        encode_data({"raw": b"\x00"})


def test_nan_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"data\['x'\] is a float \(nan\)"):
        encode_data({"x": float("nan")})


def test_circular_data_is_refused() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(PayloadError):
        encode_data(loop)


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(PayloadError, match="surrogate"):
        encode_data({"s": "\ud800"})


def test_body_at_the_limit_passes_and_one_byte_over_fails() -> None:
    overhead = len(envelope("x" * 64, "ticket.created", 10**10, "", '""'))
    fits = "a" * (MAX_BODY_BYTES - overhead)
    assert check_size(json.dumps(fits), "ticket.created", "") == MAX_BODY_BYTES
    with pytest.raises(PayloadTooLarge, match=r"1,048,577 bytes, over the limit of 1,048,576"):
        check_size(json.dumps(fits + "a"), "ticket.created", "")
