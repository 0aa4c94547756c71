"""An emit to many endpoints is stored in steps of EMIT_CHUNK, so that no step holds Redis
for long; emitted again with its key, a step that never ran (the process died between two)
runs then: none of its deliveries is lost."""

from __future__ import annotations

import uuid

import redis

import shahihooks
from shahihooks.keys import Keys
from shahihooks.state import EMIT_CHUNK


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
