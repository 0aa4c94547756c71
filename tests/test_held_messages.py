"""A worker takes two messages per execution slot (one running, one waiting for it) and,
with a Redis broker, renews the visibility of every message it holds (worker.HeldMessages):
a message is given back to the queue a visibility timeout after the worker holding it
stopped, never while it lives; an acknowledged one stays gone."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

import shahihooks
from shahihooks.celeryconf import PREFETCH_MULTIPLIER, celery_config
from shahihooks.timings import restore_interval_s
from tests.conftest import wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")

UNACKED_INDEX, UNACKED = "unacked_index", "unacked"  # kombu's keys (no options change them)


def _tag_of(client: redis.Redis, delivery_id: str) -> str | None:
    """The delivery tag of the message of `delivery_id` that a worker holds, if any."""
    for tag, raw in client.hscan_iter(UNACKED):
        if delivery_id.encode() in raw:
            return tag.decode()
    return None


def test_a_worker_takes_two_messages_per_slot() -> None:
    assert celery_config(shahihooks.Settings())["worker_prefetch_multiplier"] == 2
    assert PREFETCH_MULTIPLIER == 2


def test_a_held_message_is_renewed_while_its_attempt_runs_and_gone_once_done(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    path = f"/slow-{uuid.uuid4().hex[:8]}"
    release = threading.Event()

    def slow(_n: int) -> int:
        release.wait(20)
        return 200

    receiver.rule(path, slow)
    s = settings(urls=(receiver.url(path),), timeout_s=25)
    # the session's worker renews at the interval of the settings it started with
    interval = restore_interval_s(s)
    (sent,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    try:
        wait_until(lambda: receiver.requests_to(path), timeout=30, what="the attempt")
        tag = _tag_of(redis_client, sent.id)
        assert tag is not None, "the running attempt's message is recorded as unacknowledged"
        first = redis_client.zscore(UNACKED_INDEX, tag)
        assert first is not None
        wait_until(
            lambda: (redis_client.zscore(UNACKED_INDEX, tag) or 0) > first,
            timeout=3 * interval + 10,
            what="the held message's record renewed",
        )
    finally:
        release.set()
    wait_until(lambda: redis_client.zscore(UNACKED_INDEX, tag) is None, timeout=30, what="ack")
    time.sleep(interval + 1)  # a renewal after the acknowledgement does not bring it back
    assert redis_client.zscore(UNACKED_INDEX, tag) is None
    assert redis_client.hget(UNACKED, tag) is None
