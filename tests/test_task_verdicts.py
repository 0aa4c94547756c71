"""What the deliver task tells Celery (and Flower) of each verdict: a pure mapping, every
verdict with its own case (the `match` in tasks.py ends in `assert_never`)."""

from __future__ import annotations

import pytest
from celery.exceptions import Ignore, Retry

from shahihooks.delivery import Result
from shahihooks.errors import DeliveryError
from shahihooks.outcome import Kind
from shahihooks.state import Verdict
from shahihooks.tasks import reported


def test_a_delivered_message_succeeds_with_its_reason() -> None:
    assert reported(Result(Kind.DELIVERED, "HTTP 200")) == "HTTP 200"


def test_a_failed_attempt_is_retried_when_its_schedule_says() -> None:
    with pytest.raises(Retry) as raised:
        reported(Result(Kind.RETRY, "HTTP 500", 60.4))
    assert raised.value.message == "HTTP 500"
    assert raised.value.when == 60


@pytest.mark.parametrize("verdict", [Kind.DEAD, Verdict.DEAD])
def test_a_dead_letter_fails_the_task(verdict: Kind | Verdict) -> None:
    with pytest.raises(DeliveryError, match="dead-lettered: gone"):
        reported(Result(verdict, "gone"))


def test_a_deferred_delivery_waits_in_its_backlog_as_a_retry_without_a_time() -> None:
    with pytest.raises(Retry) as raised:
        reported(Result(Verdict.DEFERRED, "rate limit"))
    assert raised.value.message == "waiting in the backlog: rate limit"
    assert raised.value.when is None


@pytest.mark.parametrize("verdict", [Verdict.STALE, Verdict.BUSY])
def test_a_copy_or_a_stale_message_is_ignored(verdict: Verdict) -> None:
    with pytest.raises(Ignore):
        reported(Result(verdict, verdict.value))
