"""An emit to many endpoints is stored in steps of EMIT_CHUNK, so that no step holds Redis
for long; emitted again with its key, a step that never ran (the process died between two)
runs then: none of its deliveries is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection

import shahihooks
from shahihooks.errors import OutcomeUnknown
from shahihooks.keys import Keys
from shahihooks.state import EMIT_CHUNK, NotSent, State
from tests.conftest import wait_until


def _urls(n: int) -> tuple[str, ...]:
    return tuple(f"https://127.0.0.1:9/many-{i}" for i in range(n))


def _all_stored(client: redis.Redis, keys: Keys, deliveries: list[shahihooks.Delivery]) -> bool:
    """Every one of `deliveries` has its record in Redis."""
    pipe = client.pipeline()
    for d in deliveries:
        pipe.exists(keys.delivery(d.id))
    return all(pipe.execute())


def test_an_emit_to_many_endpoints_is_stored_in_steps(settings, redis_client: redis.Redis) -> None:
    n = 2 * EMIT_CHUNK + 200
    queue = f"shtest-idle-{uuid.uuid4().hex[:8]}"  # no worker reads it
    s = settings(urls=_urls(n), rate_limit=0, queue=queue)
    try:
        deliveries = shahihooks.emit("ticket.created", {"ticket_id": 1})
        assert len(deliveries) == n
        assert {d.status for d in deliveries} == {"queued"}
        assert redis_client.llen(queue) == n
        keys = Keys(s.prefix)
        msg = deliveries[0].id.rsplit("-", 1)[0]
        refs = [redis_client.hget(keys.body(m), "refs") for m in (msg, f"{msg}.1", f"{msg}.2")]
        assert refs == [str(EMIT_CHUNK).encode(), str(EMIT_CHUNK).encode(), b"200"]
        assert _all_stored(redis_client, keys, deliveries)
    finally:
        redis_client.delete(queue)


def test_a_step_that_never_ran_runs_when_the_event_is_emitted_again_with_its_key(
    settings, redis_client: redis.Redis
) -> None:
    n = EMIT_CHUNK + 100
    queue = f"shtest-idle-{uuid.uuid4().hex[:8]}"
    s = settings(urls=_urls(n), rate_limit=0, queue=queue)
    key = f"ticket-{uuid.uuid4().hex[:8]}"
    try:
        first = shahihooks.emit("ticket.created", {"ticket_id": 2}, key=key)
        keys = Keys(s.prefix)
        # as if the process had died after the first step: the second never ran
        lost = first[EMIT_CHUNK:]
        msg = first[0].id.rsplit("-", 1)[0]
        redis_client.delete(
            keys.body(f"{msg}.1"),
            keys.emitted(key) + "#1",
            *(keys.delivery(d.id) for d in lost),
        )
        again = shahihooks.emit("ticket.created", {"ticket_id": 2}, key=key)
        assert [d.id for d in again] == [d.id for d in first]  # the first emit's, all of them
        assert {d.status for d in again} == {"duplicate"}
        assert _all_stored(redis_client, keys, lost)
    finally:
        redis_client.delete(queue)


def test_a_key_emitted_again_in_another_order_overwrites_no_live_delivery(
    settings, redis_client: redis.Redis
) -> None:
    n = EMIT_CHUNK + 100
    queue = f"shtest-idle-{uuid.uuid4().hex[:8]}"
    s = settings(urls=_urls(n), rate_limit=0, queue=queue)
    key = f"ticket-{uuid.uuid4().hex[:8]}"
    keys = Keys(s.prefix)
    try:
        first = shahihooks.emit("ticket.created", {"ticket_id": 3}, key=key)
        before = {d.id: redis_client.hgetall(keys.delivery(d.id)) for d in first}
        # the same endpoints in another order: the first emit's step 0 targets land in step 1
        settings(urls=tuple(reversed(_urls(n))), rate_limit=0, queue=queue)
        again = shahihooks.emit("ticket.created", {"ticket_id": 3}, key=key)
        assert {d.status for d in again} == {"duplicate"}
        assert {d.id for d in again} == set(before)
        after = {i: redis_client.hgetall(keys.delivery(i)) for i in before}
        assert after == before  # no live record made again
        assert redis_client.llen(queue) == n  # nothing queued twice
    finally:
        redis_client.delete(queue)


# -- a broker that is not the state Redis (RabbitMQ): emit publishes what its steps queued --

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def _depth(queue: str) -> int:
    with Connection(AMQP) as conn:
        return int(conn.default_channel.queue_declare(queue, passive=True).message_count)


@pytest.fixture
def amqp_queue() -> Iterator[str]:
    """A RabbitMQ queue no worker reads, declared empty and deleted after."""
    queue = f"shtest-amqp-steps-{uuid.uuid4().hex[:8]}"
    with Connection(AMQP, connect_timeout=5) as conn:
        conn.default_channel.queue_declare(queue, durable=True, auto_delete=False)
    yield queue
    with Connection(AMQP) as conn:
        conn.default_channel.queue_delete(queue)


def test_an_emit_again_publishes_the_steps_its_first_emit_never_ran(
    settings, redis_client: redis.Redis, amqp_queue: str
) -> None:
    n = EMIT_CHUNK + 100
    s = settings(urls=_urls(n), rate_limit=0, queue=amqp_queue, broker_url=AMQP)
    key = f"ticket-{uuid.uuid4().hex[:8]}"
    first = shahihooks.emit("ticket.created", {"ticket_id": 4}, key=key)
    assert wait_until(lambda: _depth(amqp_queue) == n, timeout=10)
    # as if the first emit's process had died after its first step, before it published:
    # the second step never ran, and no message reached the broker
    keys = Keys(s.prefix)
    lost = first[EMIT_CHUNK:]
    msg = first[0].id.rsplit("-", 1)[0]
    redis_client.delete(
        keys.body(f"{msg}.1"), keys.emitted(key) + "#1", *(keys.delivery(d.id) for d in lost)
    )
    with Connection(AMQP) as conn:
        conn.default_channel.queue_purge(amqp_queue)
    again = shahihooks.emit("ticket.created", {"ticket_id": 4}, key=key)
    assert {d.status for d in again} == {"duplicate"}
    # the step run now has its messages at once (not a grace period later, by the lost-
    # message check); the first step's deliveries were published by the first emit
    assert wait_until(lambda: _depth(amqp_queue) == len(lost), timeout=10)
    assert _all_stored(redis_client, keys, lost)


@pytest.mark.parametrize(
    "failure",
    [
        NotSent(redis.ConnectionError("Redis went away (injected)")),
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    ],
    ids=["unreachable", "full"],
)
def test_an_emit_that_fails_after_its_first_step_still_publishes_that_step(
    settings,
    redis_client: redis.Redis,
    amqp_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    n = EMIT_CHUNK + 100
    s = settings(urls=_urls(n), rate_limit=0, queue=amqp_queue, broker_url=AMQP)
    key = f"ticket-{uuid.uuid4().hex[:8]}"
    real = State.emit_step

    def second_step_unreachable(self: State, step: Any, *args: Any) -> Any:
        if "." in step.msg_id:  # a later step (`<msg>.<n>`): Redis away, or full
            raise failure
        return real(self, step, *args)

    monkeypatch.setattr(State, "emit_step", second_step_unreachable)
    with pytest.raises(OutcomeUnknown, match="emit it again with the same key"):
        shahihooks.emit("ticket.created", {"ticket_id": 5}, key=key)
    # the first step is stored: its deliveries' messages are published all the same
    assert wait_until(lambda: _depth(amqp_queue) == EMIT_CHUNK, timeout=10)
    monkeypatch.undo()
    again = shahihooks.emit("ticket.created", {"ticket_id": 5}, key=key)
    assert len(again) == n
    assert {d.status for d in again} == {"duplicate"}
    assert wait_until(lambda: _depth(amqp_queue) == n, timeout=10)  # and the second step's
    assert _all_stored(redis_client, Keys(s.prefix), again)
