"""A worker takes two messages per execution slot (one running, one waiting for it) and,
with a Redis broker, renews the visibility of every message it holds (worker.HeldMessages):
a message is given back to the queue a visibility timeout after the worker holding it
stopped, never while it lives; an acknowledged one stays gone."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import redis
from kombu import Connection
from kombu.simple import SimpleQueue

import shahihooks
from shahihooks.broker import RenewalStreak, Transport
from shahihooks.celeryconf import PREFETCH_MULTIPLIER, celery_config
from shahihooks.timings import restore_interval_s
from tests.conftest import SECRET, wait_until
from tests.faults import World, halt
from tests.receiver import Received, Receiver

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


def _signed(request: Received) -> bool:
    """Signed with the test secret over its exact body (the page's scheme)."""
    mac = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.header("x-shahi-assist-signature"), f"sha256={mac}")


def test_a_message_held_by_a_killed_worker_is_sent_once_by_the_next_worker(
    world: World, receiver: Receiver
) -> None:
    """One slot (concurrency 1) holds two messages: the first in an attempt the receiver
    keeps waiting, the second behind it. The worker is SIGKILLed; a new worker sends
    everything. The held message comes back a visibility timeout after its last renewal and
    is sent once; the attempt in flight had reached the receiver, which answered after the
    kill: its outcome never recorded, its lease ends and it is sent again, with the same id
    (README, Idempotency: the one duplicate a killed worker may cause)."""
    world.settings = {"SHAHIHOOKS_TIMEOUT": "5"}  # lease 15 s, visibility 35 s
    path = f"/held-kill-{uuid.uuid4().hex[:6]}"
    release = threading.Event()
    # held until the kill (the `finally`): a slow machine cannot have it answered before
    receiver.rule(path, lambda n: (release.wait(60) if n == 1 else None, 200)[1])
    ids = world.emit(5, path)
    first = world.worker(1)
    try:
        (in_flight,) = receiver.wait_for(path, 1, timeout=30)
        running = in_flight.header("webhook-id")
        client = world.client
        held = wait_until(
            lambda: [i for i in ids if i != running and _tag_of(client, i)],
            timeout=3,
            what="the second message held behind the running attempt",
        )
        assert len(held) == 1, "two messages in the one slot"
        assert client.llen("faults") == 3
        halt(first, signal.SIGKILL)
    finally:
        release.set()  # the receiver answers the attempt the kill cut off
    world.worker(1)
    ledger = world.wait_ledger(ids, path, timeout=120)
    print(f"\nheld {held[0]}, in flight {running}: {ledger}")
    assert ledger.missing == []
    assert ledger.dead == 0
    assert ledger.delivered == 5
    got = receiver.requests_to(path)
    assert all(_signed(r) for r in got)
    seen = Counter(r.header("webhook-id") for r in got if r.status == 200)
    assert seen == {i: 2 if i == running else 1 for i in ids}


def test_failed_renewals_are_told_once_per_streak_and_their_end_too(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A warning at the first failed renewal (what it risks), none for the next ones of the
    streak, and one when a renewal reaches Redis again; the held message's record is then
    renewed. The broker is a private Redis that the test stops and starts again."""
    caplog.set_level(logging.WARNING, logger="shahihooks.broker")
    connection = Connection(
        world.url, transport=Transport, transport_options={"visibility_timeout": 35}
    )
    try:
        channel = connection.channel()
        queue = SimpleQueue(channel, f"renewals-{uuid.uuid4().hex[:6]}")
        queue.put({"n": 1})
        held = queue.get(timeout=5)  # taken, not acknowledged: held
        qos, streak = channel.qos, RenewalStreak()
        tag = held.delivery_tag
        recorded = world.client.zscore(UNACKED_INDEX, tag)
        assert recorded is not None
        world.stop_redis()
        for _ in range(3):
            qos.renew_held(streak)
        said = [r.getMessage() for r in caplog.records if r.name == "shahihooks.broker"]
        assert len(said) == 1, said
        assert "held messages not renewed (ConnectionError" in said[0]
        assert "35 s (the visibility timeout)" in said[0]
        world.start_redis()  # append-only: the record survives
        renewed_at = time.time()

        def renewed() -> bool:
            qos.renew_held(streak)
            return streak.failures == 0

        wait_until(renewed, timeout=10, what="a renewal after the restart")
        said = [r.getMessage() for r in caplog.records if r.name == "shahihooks.broker"]
        assert len(said) == 2, said
        assert re.fullmatch(r"held messages: renewal resumed after (\d+) failures", said[1])
        assert int(said[1].split()[-2]) >= 3
        assert (world.client.zscore(UNACKED_INDEX, tag) or 0) >= renewed_at > recorded
    finally:
        connection.release()
