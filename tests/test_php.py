"""The `php` body style, byte for byte against real PHP's json_encode(json_decode($b, true)).

Each expected value below was written by PHP 8.2 (`serialize_precision = -1`, default
flags); `test_real_php_writes_the_expected_bytes` keeps the table honest on this machine's PHP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shahihooks.bodystyle import BodyStyle, body_style, render
from shahihooks.errors import ConfigurationError, PayloadError
from shahihooks.payload import encode_data, envelope
from tests.phptools import Reencoder

PHP = BodyStyle.PHP

CASES: dict[str, tuple[bytes, bytes]] = {
    "slashes": (
        rb'{"url":"https://example.com/ticket/login-issue/"}',
        rb'{"url":"https:\/\/example.com\/ticket\/login-issue\/"}',
    ),
    "non-ASCII and beyond the BMP": (
        '{"t":"échoué — 日本 ✓ 😀 𝄞"}'.encode(),
        rb'{"t":"\u00e9chou\u00e9 \u2014 \u65e5\u672c \u2713 \ud83d\ude00 \ud834\udd1e"}',
    ),
    "quotes and backslashes": (
        rb'{"q":"say \"hi\" \\ back \\/ slash"}',
        rb'{"q":"say \"hi\" \\ back \\\/ slash"}',
    ),
    "control characters, DEL kept": (
        rb'{"c":"\u0000\u0001\b\f\n\r\t\u001f\u007f"}',
        b'{"c":"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\x7f"}',
    ),
    "U+2028 and U+2029": ('{"ls":"\u2028\u2029"}'.encode(), rb'{"ls":"\u2028\u2029"}'),
    "empty objects become arrays": (
        rb'{"e":{},"a":[],"n":[{},[],{"x":{}}]}',
        rb'{"e":[],"a":[],"n":[[],[],{"x":[]}]}',
    ),
    "keys 0..n-1 in order make a list": (rb'{"0":"a","1":"b"}', rb'["a","b"]'),
    "keys out of order stay an object": (rb'{"1":"a","0":"b"}', rb'{"1":"a","0":"b"}'),
    "keys with a gap stay an object": (rb'{"0":"a","2":"b"}', rb'{"0":"a","2":"b"}'),
    "keys PHP keeps as strings": (
        rb'{"00":"a","-0":"b","":"c"}',
        rb'{"00":"a","-0":"b","":"c"}',
    ),
    "nested index-like keys": (rb'{"k":{"0":{"0":{"0":[]}}}}', rb'{"k":[[[[]]]]}'),
    "duplicate key: first place, last value": (rb'{"a":1,"b":2,"a":3}', rb'{"a":3,"b":2}'),
    "floats": (
        rb"[1.0,-0.0,-0,0.5,0.1,1e-4,1e-5,2.5e-7,1e16,1e17,1e21,1e25,123456.789,"
        rb"1.7976931348623157e308,5e-324,-1e-400]",
        rb"[1,-0,0,0.5,0.1,0.0001,1.0e-5,2.5e-7,10000000000000000,1.0e+17,1.0e+21,1.0e+25,"
        rb"123456.789,1.7976931348623157e+308,5.0e-324,-0]",
    ),
    "integers beyond PHP_INT_MAX become floats": (
        rb"[9223372036854775807,9223372036854775808,-9223372036854775808,"
        rb"-9223372036854775809,123456789012345678901234567890]",
        rb"[9223372036854775807,9.223372036854776e+18,-9223372036854775808,"
        rb"-9.223372036854776e+18,1.2345678901234568e+29]",
    ),
    "nested lists": (
        rb'{"deep":[[[["x",[1,[2,[3]]]]]]]}',
        rb'{"deep":[[[["x",[1,[2,[3]]]]]]]}',
    ),
    "literals and an empty key": (
        rb'{"k":{"":{}},"t":true,"f":false,"n":null}',
        rb'{"k":{"":[]},"t":true,"f":false,"n":null}',
    ),
    "whitespace between tokens": (b' {"ws" : [ 1 , 2 ] }\n', rb'{"ws":[1,2]}'),
    "non-ASCII keys": (
        '{"😀key":"v","é":"é"}'.encode(),
        rb'{"\ud83d\ude00key":"v","\u00e9":"\u00e9"}',
    ),
    "HTML characters stay, but not a slash": (
        b'{"<>&\'":"<b>&amp;</b>"}',
        b'{"<>&\'":"<b>&amp;<\\/b>"}',
    ),
}

# Bodies PHP's json_decode or json_encode fails on: the page's handler cannot verify them.
REFUSED: dict[str, bytes] = {
    "a float beyond a double": b"[1e400]",
    "an integer beyond a double": b"[1" + b"0" * 400 + b"]",
    "a lone surrogate": rb'["\ud800"]',
    "surrogates in the wrong order": rb'["\udc00\ud83d"]',
    "NaN": b"[NaN]",
    "Infinity": b"[-Infinity]",
    "invalid UTF-8": b'["\xff"]',
    "512 levels deep": b"[" * 512 + b"]" * 512,
    "truncated": b'{"a":1',
    "empty": b"",
    "a byte order mark": b"\xef\xbb\xbf{}",
}


@pytest.fixture(scope="module")
def php_reencode() -> Iterator[Reencoder]:
    reencoder = Reencoder()
    yield reencoder
    reencoder.close()


@pytest.mark.parametrize(("body", "expected"), CASES.values(), ids=CASES.keys())
def test_php_style_writes_the_bytes_php_writes(body: bytes, expected: bytes) -> None:
    assert render(body, PHP) == expected


@pytest.mark.parametrize(("body", "expected"), CASES.values(), ids=CASES.keys())
def test_real_php_writes_the_expected_bytes(
    php_reencode: Reencoder, body: bytes, expected: bytes
) -> None:
    assert php_reencode(body) == expected


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_bodies_php_cannot_round_trip_are_refused(php_reencode: Reencoder, body: bytes) -> None:
    assert php_reencode(body).startswith(b"!")
    with pytest.raises(PayloadError):
        render(body, PHP)


def test_511_levels_is_as_deep_as_php_decodes(php_reencode: Reencoder) -> None:
    body = b'{"a":' * 511 + b"{}" + b"}" * 511
    assert php_reencode(body).startswith(b"!")
    with pytest.raises(PayloadError, match="511"):
        render(body, PHP)
    body = b"[" * 511 + b"]" * 511
    assert render(body, PHP) == php_reencode(body) == body


def test_standard_style_is_the_body_unchanged() -> None:
    body = b'{"url":"https://example.com/","e":{}}'
    assert render(body, BodyStyle.STANDARD) is body
    assert render(body, "standard") is body


def test_a_bad_body_style_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'laravel' is not one of: standard, php"):
        body_style("laravel")
    assert body_style(" PHP ") is PHP


# Generated payloads: what emit() encodes, then what any sender might write.

_keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["0", "1", "2", "-0", "01", "", "/", "é", "9223372036854775808"]),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**1100]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.text(alphabet=st.sampled_from('/\\"\x00\x1f\x7f\u2028é😀 ')),
)


def _as_index_keys(items: list[object]) -> dict[str, object]:
    return {str(i): v for i, v in enumerate(items)}


_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.lists(inner, max_size=3).map(_as_index_keys),
    ),
    max_leaves=25,
)


@hsettings(max_examples=400, deadline=None)
@given(data=st.dictionaries(_keys, _values, max_size=6))
def test_php_style_matches_real_php_on_emitted_payloads(
    php_reencode: Reencoder, data: dict[str, object]
) -> None:
    try:
        data_json = encode_data(data)
    except PayloadError:
        return  # refused at emit: never sent in any style
    body = envelope("evt_1-ab", "ticket.created", 1638019200, "https://example.com/", data_json)
    _assert_same_as_php(php_reencode, body)


@hsettings(max_examples=150, deadline=None)
@given(
    value=_values,
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 1]),
)
def test_php_style_matches_real_php_on_bodies_other_senders_write(
    php_reencode: Reencoder, value: object, ensure_ascii: bool, indent: int | None
) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode()
    _assert_same_as_php(php_reencode, body)


def _assert_same_as_php(php_reencode: Reencoder, body: bytes) -> None:
    expected = php_reencode(body)
    if expected.startswith(b"!"):
        with pytest.raises(PayloadError):
            render(body, PHP)
    else:
        assert render(body, PHP) == expected
        # and what PHP wrote, re-encoded, as PHP re-encodes it (not always itself: -0.0 is
        # written "-0", which PHP reads back as the integer 0)
        assert render(expected, PHP) == php_reencode(expected)
