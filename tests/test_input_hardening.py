"""Inputs that used to collide or crash: throttle values `1` and `"1"`, and `emit --data`
with JSON nested deeper than Python can decode."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.keys import Keys
from tests.receiver import Receiver


def test_throttle_keys_tell_a_number_from_its_string() -> None:
    keys = Keys("p")
    assert keys.throttle("article.viewed", 1) != keys.throttle("article.viewed", "1")
    assert keys.throttle("article.viewed", 1) == "p:throttle:article.viewed:1"
    assert keys.throttle("article.viewed", "1") == 'p:throttle:article.viewed:"1"'
    assert keys.throttle("article.viewed", True) != keys.throttle("article.viewed", "true")


def test_a_long_throttle_value_is_hashed_and_never_meets_a_short_one() -> None:
    long_key = Keys("p").throttle("article.viewed", "x" * 500)
    assert len(long_key) < 120
    assert long_key.startswith("p:throttle:article.viewed:sha256:")
    assert long_key != Keys("p").throttle("article.viewed", "y" * 500)


@pytest.mark.usefixtures("worker")
def test_throttling_article_1_does_not_throttle_article_string_1(
    settings, receiver: Receiver
) -> None:
    path = f"/throttle-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    first = shahihooks.emit("article.viewed", {"article_id": 1, "title": "int"})
    again = shahihooks.emit("article.viewed", {"article_id": 1, "title": "int again"})
    other = shahihooks.emit("article.viewed", {"article_id": "1", "title": "str"})
    assert len(first) == 1
    assert again == [], "the same article within the window is throttled"
    assert len(other) == 1, "article '1' is another value than article 1"
    receiver.wait_for(path, 2)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_emit_data_nested_too_deeply_is_a_clear_error(settings, opener: str) -> None:
    settings()
    closer = "]" if opener == "[" else "}"
    deep = opener * 100_000 + "1" + closer * 100_000
    result = CliRunner().invoke(main, ["emit", "ticket.created", "--data", deep])
    assert result.exit_code == 2
    assert "--data" in result.output
    assert "nests too deeply" in result.output
    assert not isinstance(result.exception, RecursionError)
