"""What to do after an attempt: pure decisions, testable without a network or Redis.

2xx                      delivered
a permanent refusal      dead-lettered at once (no retry can change it: a private address)
anything else            retried after the schedule's next delay (60, 300, 1800 s)
  (3xx, 4xx, 5xx,          429/503 with Retry-After: no sooner than asked, capped
   timeout, refused...)
retries spent            dead-lettered, with the full body, replayable
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shahihooks.transport import Response


class Kind(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class Judgement:
    """What one response (or its absence) means for the delivery: delivered, retried
    after `delay_s`, or dead."""

    kind: Kind
    reason: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed attempt is tried again: the schedule, and how far a receiver's
    Retry-After may push the next attempt past it."""

    schedule_s: tuple[float, ...]
    retry_after_max_s: float = 3600

    def delay_after(self, attempt: int) -> float | None:
        """Seconds before the attempt after `attempt` (1-based), or None when retries are
        spent."""
        schedule = self.schedule_s
        return schedule[attempt - 1] if 1 <= attempt <= len(schedule) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), else None.

    Delta-seconds are ASCII digits only: `str.isdigit` also takes '²' or '١', which
    `float` then refuses (a crash in the attempt, not a header ignored).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


RECEIVER_TEXT_MAX = 500  # characters of a header a receiver chose, kept in a reason
REASON_MAX = 1000  # characters of a reason kept in the log and a dead letter


def cut(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, saying how much was cut: what a receiver sends
    reaches the log (up to SHAHIHOOKS_LOG_MAX_LEN entries) and dead letters, and must not
    grow them (a 60 KB `Location` made 66 KB log entries)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters cut)"


def reason_for(status: int | None, error: str | None, location: str | None = None) -> str:
    if status is None:
        return cut(error or "no response", REASON_MAX)
    if 300 <= status < 400:
        where = f" to {cut(location, RECEIVER_TEXT_MAX)}" if location else ""
        return f"HTTP {status} redirect{where} (redirects are not followed)"
    return f"HTTP {status}"


def classify(response: Response, attempt: int, policy: RetryPolicy, now: float) -> Judgement:
    """What `response` means for attempt number `attempt` (1 is the first send); `now`:
    time.time(), for a Retry-After that names a date."""
    status = response.status
    if response.permanent:
        return Judgement(Kind.DEAD, f"{response.error} (not retried: no retry can change it)")
    if status is not None and 200 <= status < 300:
        return Judgement(Kind.DELIVERED, f"HTTP {status}")
    reason = reason_for(status, response.error, response.location)
    delay = policy.delay_after(attempt)
    if delay is None:
        tries = f"{attempt} attempt" + ("s" if attempt != 1 else "")
        return Judgement(Kind.DEAD, f"{reason}; gave up after {tries}")
    if status in (429, 503):
        asked = parse_retry_after(response.retry_after, now)
        if asked is not None and math.isfinite(asked):
            delay = max(delay, min(asked, policy.retry_after_max_s))
    return Judgement(Kind.RETRY, reason, delay)
