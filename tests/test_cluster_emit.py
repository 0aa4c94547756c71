"""An emit over a Redis Cluster's shards (tests/cluster.py): a key's marker and a throttle
on their lead shard whatever the endpoints, an emit tried again after a lost answer or a
crash between its steps; a URL of two nodes, the first down."""

from __future__ import annotations

import time
import uuid

from shahihooks import shards
from shahihooks.keys import Keys, url_tag
from shahihooks.statetypes import Placed, StoredEvent, Target
from tests.cluster import (
    Cluster,
    cluster_fixture,  # noqa: F401 (the fixture `cluster`, one per module)
    emit_rows,
    settings_of,
    urls_in,
    wait_delivered,
    worker,
    world_fixture,  # noqa: F401 (the fixture `world`)
)
from tests.conftest import connects, free_port
from tests.faults import World
from tests.receiver import Receiver


def test_cluster_emit_with_a_key_is_stored_once_over_every_shard(
    world: World, receiver: Receiver
) -> None:
    paths = [f"/cl-key-{uuid.uuid4().hex[:6]}-{n}" for n in range(30)]
    urls = [receiver.url(p) for p in paths]
    first = emit_rows(world, 1, urls, "order-1")
    assert [i for i, _ in first] == [f"{first[0][0].split('-')[0]}-{url_tag(u)}" for u in urls]
    assert {status for _, status in first} == {"queued"}
    again = emit_rows(world, 1, urls, "order-1")
    assert sorted(again) == sorted((i, "duplicate") for i, _ in first)
    worker(world, 8)
    ids = [i for i, _ in first]
    assert set(wait_delivered(settings_of(world), ids, timeout=60).values()) == {"ok"}
    got = [r.header("webhook-id") for p in paths for r in receiver.requests_to(p)]
    assert sorted(got) == sorted(ids)


def test_cluster_emit_with_a_key_is_a_duplicate_with_other_endpoints(
    world: World, receiver: Receiver
) -> None:
    """The key's marker is on the key's lead shard, whatever shards the endpoints are in:
    a first emit to one shard, the second to another (neither the lead) is a duplicate."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-2"))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    first = emit_rows(world, 1, urls_in(receiver, "k1", one), "order-2")
    assert [s for _, s in first] == ["queued"]
    again = emit_rows(world, 1, urls_in(receiver, "k2", other, 2), "order-2")
    assert again == [(first[0][0], "duplicate")]
    # the lead shard's step had no delivery: its body holds the nonce for the TTL only
    state = shards.shards(settings)[lead]
    body = state.keys.body(first[0][0].split("-")[0])
    assert sorted(state.client.hkeys(body)) == [b"nonce", b"refs"]
    assert 0 < state.client.ttl(body) <= settings.idempotency_ttl_s


def test_cluster_throttled_event_is_throttled_with_other_endpoints(
    world: World, receiver: Receiver
) -> None:
    """The throttle lives on its own lead shard: emits of the same value to endpoints in
    other shards (and with other keys) meet it."""
    world.settings["SHAHIHOOKS_THROTTLE"] = "ticket.created:ticket_id:3600"
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).throttle("ticket.created", 0))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    first = emit_rows(world, 1, urls_in(receiver, "t1", one), "view-1")
    assert [s for _, s in first] == ["queued"]
    assert emit_rows(world, 1, urls_in(receiver, "t2", other, 2), "view-2") == []
    assert emit_rows(world, 1, urls_in(receiver, "t3", lead) + urls_in(receiver, "t4", one)) == []


def test_cluster_emit_tried_again_after_a_lost_answer_is_no_duplicate(
    world: World, receiver: Receiver
) -> None:
    """A try of the same emit (its nonce) whose lead step of no delivery had run answers
    'again' there, and the emit completes as placed, not as a duplicate of itself."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-4"))
    (url,) = urls_in(receiver, "a1", (lead + 1) % shards.N_SHARDS)
    msg = f"evt_{uuid.uuid4().hex}"
    target = Target(f"{msg}-{url_tag(url)}", url_tag(url), url, url, 0, "urls")
    new = StoredEvent(msg, "ticket.created", int(time.time()), "{}", "n1", key="order-4")
    first = shards.emit(settings, new, [target], [])
    assert first.placed == (Placed.QUEUED,)
    assert shards.emit(settings, new, [target], []) == first


def test_cluster_emit_again_after_a_crash_between_steps_runs_the_missing_step(
    world: World, receiver: Receiver
) -> None:
    """First step (the lead's, with no delivery) and the next ran, the last did not: the
    same key again stores exactly the last step's deliveries and answers the first's."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-3"))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    urls = urls_in(receiver, "c1", one, 2) + urls_in(receiver, "c2", other, 3)
    first = emit_rows(world, 1, urls, "order-3")
    ids = [i for i, _ in first]
    state = shards.shards(settings)[other]
    msg = ids[0].split("-")[0]
    # as if the process had died after step 1 (shard `one`): step 2 (`other`) never ran
    state.client.delete(
        state.keys.emitted("order-3", 2),
        state.keys.body(f"{msg}.2"),
        *(state.keys.delivery(i) for i in ids[2:]),
    )
    again = emit_rows(world, 1, urls, "order-3")
    assert again == [(i, "duplicate") for i in ids]
    assert all(state.client.exists(state.keys.delivery(i)) for i in ids[2:])
    assert state.client.hget(state.keys.body(f"{msg}.2"), "refs") == b"3"


def test_cluster_url_of_several_nodes_starts_past_one_that_is_down(
    world: World, receiver: Receiver, cluster: Cluster
) -> None:
    """SHAHIHOOKS_REDIS_URL lists two nodes, the first on a port nothing listens on: the
    emitter and the worker find the cluster through the second, and the event is delivered."""
    down = free_port()
    assert not connects(down)
    node = next(iter(cluster.procs))
    world.settings["SHAHIHOOKS_REDIS_URL"] = f"redis://127.0.0.1:{down},redis://127.0.0.1:{node}/0"
    paths = [f"/cl-seeds-{uuid.uuid4().hex[:6]}-{n}" for n in range(4)]
    rows = emit_rows(world, 2, [receiver.url(p) for p in paths])
    assert len(rows) == 8
    assert {status for _, status in rows} == {"queued"}
    worker(world, 4)
    settings = settings_of(world)
    assert settings.redis_url.startswith(f"redis://127.0.0.1:{down},")
    ids = [i for i, _ in rows]
    assert set(wait_delivered(settings, ids, timeout=60).values()) == {"ok"}
    got = [r.header("webhook-id") for p in paths for r in receiver.requests_to(p)]
    assert sorted(got) == sorted(ids)
