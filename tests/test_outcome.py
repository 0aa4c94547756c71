"""What happens after an attempt, and the timings of one attempt: pure functions."""

from __future__ import annotations

import email.utils

import pytest

from shahihooks.logline import latency_bucket
from shahihooks.outcome import Kind, RetryPolicy, classify, parse_retry_after
from shahihooks.settings import Settings
from shahihooks.timings import grace_s, lease_s, visibility_timeout_s
from shahihooks.transport import Response

SCHEDULE = (60.0, 300.0, 1800.0)
POLICY = RetryPolicy(SCHEDULE)


def answered(status: int | None, **fields: str) -> Response:
    """A receiver's answer (or, with `status` None, its absence) as an attempt sees it."""
    return Response(status, 0.0, **fields)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(answered(status), 1, POLICY, 0.0).kind is Kind.DELIVERED


@pytest.mark.parametrize(("attempt", "delay"), [(1, 60.0), (2, 300.0), (3, 1800.0)])
def test_failures_follow_the_schedule(attempt: int, delay: float) -> None:
    outcome = classify(answered(500), attempt, POLICY, 0.0)
    assert (outcome.kind, outcome.delay_s) == (Kind.RETRY, delay)


def test_the_fourth_failure_is_dead() -> None:
    outcome = classify(answered(None, error="read timeout"), 4, POLICY, 0.0)
    assert outcome.kind is Kind.DEAD
    assert outcome.reason == "read timeout; gave up after 4 attempts"


def test_a_redirect_is_a_failure_naming_its_location() -> None:
    outcome = classify(answered(301, location="https://x.example/"), 1, POLICY, 0.0)
    assert outcome.kind is Kind.RETRY
    assert "redirect to https://x.example/ (redirects are not followed)" in outcome.reason


def test_retry_after_wins_up_to_its_cap_and_never_shortens() -> None:
    def delay(header: str, status: int = 429) -> float:
        policy = RetryPolicy(SCHEDULE, retry_after_max_s=3600)
        return classify(answered(status, retry_after=header), 1, policy, 1000.0).delay_s

    assert delay("120") == 120
    assert delay("10") == 60, "no sooner than the schedule"
    assert delay("99999") == 3600, "capped"
    assert delay("120", status=500) == 60, "only 429 and 503 carry Retry-After"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("30", now=0) == 30
    date = email.utils.formatdate(1_000_090, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 90
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


@pytest.mark.parametrize(
    "header", ["²", "¹", "³", "١٠", "٣", "3²", "-5", "+5", "1e3", "5.0", "0x10"]
)
def test_retry_after_that_is_not_ascii_digits_or_a_date_is_ignored(header: str) -> None:
    assert parse_retry_after(header, now=0) is None
    failed = classify(answered(503, retry_after=header), 1, RetryPolicy((60,)), 0.0)
    assert (failed.kind, failed.delay_s) == (Kind.RETRY, 60)


def test_retry_delay_is_none_once_the_schedule_is_spent() -> None:
    assert POLICY.delay_after(3) == 1800
    assert POLICY.delay_after(4) is None
    assert RetryPolicy(()).delay_after(1) is None


def test_latency_buckets() -> None:
    assert latency_bucket(0) == "le10"
    assert latency_bucket(11) == "le25"
    assert latency_bucket(30001) == "inf"


def test_a_worker_holds_a_delivery_for_one_attempt_only() -> None:
    s = Settings(timeout_s=15)
    assert lease_s(s) == 25
    assert visibility_timeout_s(s) == 45
    assert grace_s(s) == 45 + 4.5 + 15
    # no wait of the schedule or the rate window stretches them
    long = Settings(timeout_s=15, retry_schedule_s=(86_400,), rate_window_s=86_400)
    assert visibility_timeout_s(long) == 45


def test_a_permanent_refusal_is_dead_at_once_whatever_the_schedule() -> None:
    refused = Response(None, 0.0, error="refused: a private address", permanent=True)
    outcome = classify(refused, 1, POLICY, 0.0)
    assert outcome.kind is Kind.DEAD
    assert outcome.reason == "refused: a private address (not retried: no retry can change it)"
