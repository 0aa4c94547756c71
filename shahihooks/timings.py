"""The timings of one attempt, all following from the request timeout.

No worker ever holds a waiting delivery: retries and rate-limit waits live in Redis (the
schedule and the backlogs, see state.py). A worker holds a delivery only for one attempt:

    attempt    at most SHAHIHOOKS_TIMEOUT, wall clock (15 s)
    lease      the attempt plus a margin: then the schedule sends it again (25 s)
    visibility the lease plus a margin: then Redis redelivers an unacknowledged message that
               a killed worker had taken (45 s)
    grace      visibility plus a margin: a message taken from the queue that has not begun
               by then was lost, and is published again (60 s)
"""

from __future__ import annotations

from shahihooks.settings import Settings

LEASE_MARGIN_S = 10.0
VISIBILITY_MARGIN_S = 20.0
GRACE_MARGIN_S = 15.0


def lease_s(settings: Settings) -> float:
    """How long one attempt holds its delivery before the schedule sends it again."""
    return settings.timeout_s + LEASE_MARGIN_S


def visibility_timeout_s(settings: Settings) -> int:
    """How long Redis waits before redelivering an unacknowledged message."""
    return int(lease_s(settings) + VISIBILITY_MARGIN_S)


def restore_interval_s(settings: Settings) -> float:
    return min(10.0, max(1.0, visibility_timeout_s(settings) / 10))


def grace_s(settings: Settings) -> float:
    """A message taken from the queue begins within this, or it was lost."""
    return visibility_timeout_s(settings) + restore_interval_s(settings) + GRACE_MARGIN_S
