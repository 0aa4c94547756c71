"""One endpoint's trouble stays with that endpoint, with real worker processes: a default
worker keeps a healthy endpoint on time beside a hanging one, nothing is lost when a worker
is killed while a circuit is open, and a delivery released from the backlog begins however
long its message waited (tests/faults.py's world: a private Redis, subprocess workers)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

import shahihooks
from shahihooks.keys import Keys, url_tag
from tests.conftest import ScriptKeys, wait_until
from tests.receiver import Receiver
from tests.test_endpoint_health import _hang, _path

pytestmark = pytest.mark.usefixtures("worker")


def test_default_worker_keeps_a_healthy_endpoint_on_time_beside_a_hanging_one(
    world, receiver: Receiver
) -> None:
    """The issue's own check, with a default worker (`shahihooks worker`: 16 threads, a 15 s
    timeout) and the rate limit off: 150 emits to a never-answering URL and a healthy one."""
    from tests.faults import halt

    hang, ok = _path("hang"), _path("ok")
    receiver.rule(hang, _hang(60))
    world.settings.update(
        {
            "SHAHIHOOKS_URLS": f"{receiver.url(hang)} {receiver.url(ok)}",
            "SHAHIHOOKS_RETRY_SCHEDULE": "60,300,1800",
        }
    )
    worker = world.worker(16)
    app = shahihooks.Settings.from_env(world.env())
    shahihooks.emit("ticket.created", {"ticket_id": 0}, settings=app)
    receiver.wait_for(ok, 1, timeout=60)  # the worker is up
    sent_at = {}
    start = time.monotonic()
    for i in range(1, 151):
        (_, healthy) = shahihooks.emit("ticket.created", {"ticket_id": i}, settings=app)
        sent_at[healthy.id] = time.time()
    got = receiver.wait_for(ok, 151, timeout=40)
    took = time.monotonic() - start
    assert took < 30, f"150 healthy deliveries took {took:.1f} s beside a hanging endpoint"
    latencies = sorted(r.at - sent_at[r.header("webhook-id")] for r in got[1:])
    print(
        f"healthy beside hanging: all 150 in {took:.1f} s; latency p50 "
        f"{latencies[75] * 1000:.0f} ms, p99 {latencies[148] * 1000:.0f} ms; the hanging "
        f"endpoint got {len(receiver.requests_to(hang))} requests"
    )
    assert len(receiver.requests_to(hang)) <= 3  # two slots, and the warm-up's
    halt(worker)


def test_nothing_is_lost_when_a_worker_is_killed_while_a_circuit_is_open(
    world, receiver: Receiver
) -> None:
    import os
    import signal

    path = _path("down")
    answer = {"status": 503}
    receiver.rule(path, lambda n: answer["status"])
    world.settings.update(
        {
            "SHAHIHOOKS_CIRCUIT_THRESHOLD": "2",
            "SHAHIHOOKS_CIRCUIT_COOLDOWN": "2",
            "SHAHIHOOKS_CIRCUIT_COOLDOWN_MAX": "2",
            "SHAHIHOOKS_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1",
        }
    )
    worker = world.worker(8)
    ids = world.emit(10, path)
    ep = world.keys.health(url_tag(receiver.url(path)))
    wait_until(lambda: float(world.client.hget(ep, "open") or 0) > 0, timeout=60, what="open")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    answer["status"] = 200
    world.worker(8)
    ledger = world.wait_ledger(ids, path, timeout=120)
    assert not ledger.missing, str(ledger)
    assert ledger.dead == 0, str(ledger)
    assert ledger.delivered == 10, str(ledger)


def test_a_delivery_released_from_the_backlog_begins_however_long_its_message_waited(
    settings, redis_client: redis.Redis
) -> None:
    from shahihooks.state import Finished, MessageRef, Outcome, Verdict, state_for

    queue = f"shtest-idle-{uuid.uuid4().hex[:8]}"  # no worker reads it
    url = "https://127.0.0.1:9/slow-queue"
    s = settings(urls=(url,), rate_limit=0, queue=queue, endpoint_concurrency=1)
    try:
        first, second = (shahihooks.emit("ticket.created", {"n": i})[0] for i in range(2))
        state = state_for(s)
        assert state.begin(MessageRef(first.id, 1)).verdict is Verdict.GO
        assert state.begin(MessageRef(second.id, 1)).verdict is Verdict.DEFERRED  # the limit is 1
        done = state.finish(MessageRef(first.id, 1), Outcome(Finished.DELIVERED, signal="ok"))
        (released,) = done.released  # the slot handed on at once
        assert released.delivery_id == second.id
        # its message waits in a slow queue past its reservation, which lapses; another
        # delivery takes the slot meanwhile
        fly = Keys(s.prefix).in_flight(url_tag(url))
        redis_client.zrem(fly, second.id)
        redis_client.zadd(fly, {"another": time.time() * 1000 + 60_000})
        assert state.begin(MessageRef(second.id, released.token)).verdict is Verdict.GO
    finally:
        redis_client.delete(queue)


def test_a_slot_reserved_for_a_release_goes_to_the_delivery_that_begins_first(
    settings, redis_client: redis.Redis
) -> None:
    """With a deep queue, a released delivery's message waits behind every message ahead of
    it: the slot it was given serves the queue's head meanwhile, and the released delivery,
    its grant taken, waits at the head of the backlog for the next free slot."""
    from shahihooks.state import Finished, MessageRef, Outcome, Verdict, state_for

    queue = f"shtest-idle-{uuid.uuid4().hex[:8]}"  # no worker reads it: the test begins each
    url = "https://127.0.0.1:9/deep-queue"
    s = settings(urls=(url,), rate_limit=0, queue=queue, endpoint_concurrency=1)
    try:
        first, second, third = (shahihooks.emit("ticket.created", {"n": i})[0] for i in range(3))
        state = state_for(s)
        assert state.begin(MessageRef(first.id, 1)).verdict is Verdict.GO
        assert state.begin(MessageRef(second.id, 1)).verdict is Verdict.DEFERRED  # the limit is 1
        done = state.finish(MessageRef(first.id, 1), Outcome(Finished.DELIVERED, signal="ok"))
        (released,) = done.released
        assert released.delivery_id == second.id
        held = ScriptKeys(s.prefix).held(url_tag(url))
        assert redis_client.zrange(held, 0, -1) == [second.id.encode()]

        # the third's message was ahead of the release's in the queue: it takes the slot
        assert state.begin(MessageRef(third.id, 1)).verdict is Verdict.GO
        assert redis_client.zcard(held) == 0
        # the released delivery's message comes: no slot now, so back to the backlog's head
        again = state.begin(MessageRef(second.id, released.token))
        assert again.verdict is Verdict.DEFERRED, again
        backlog = Keys(s.prefix).backlog(url_tag(url))
        assert redis_client.zrange(backlog, 0, -1) == [second.id.encode()]

        done = state.finish(MessageRef(third.id, 1), Outcome(Finished.DELIVERED, signal="ok"))
        (released,) = done.released
        assert released.delivery_id == second.id
        assert state.begin(MessageRef(second.id, released.token)).verdict is Verdict.GO
        fly = Keys(s.prefix).in_flight(url_tag(url))
        assert redis_client.zrange(fly, 0, -1) == [second.id.encode()]
    finally:
        redis_client.delete(queue)
