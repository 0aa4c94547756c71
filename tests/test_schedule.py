"""Waits live in Redis: retries in the schedule, rate-limited deliveries in their URL's
backlog (released in emit order, never more than the limit per window), bounded, visible.
Real Redis, the real worker and receiver; the movers' claim tested with two at once."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks import dead
from shahihooks.app import app, publisher
from shahihooks.cli import main
from shahihooks.contract import HealthField
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.keys import Keys, url_tag
from shahihooks.mover import Mover
from shahihooks.state import state_for
from tests.conftest import ScriptKeys, wait_until
from tests.receiver import Receiver


def paths(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"/{name}-{tag}" for name in names]


def log_of(client: redis.Redis, keys: Keys, delivery_id: str) -> list[dict[bytes, bytes]]:
    return [f for _, f in client.xrange(keys.log) if f[b"id"] == delivery_id.encode()]


@pytest.mark.usefixtures("worker")
def test_a_waiting_retry_is_held_by_redis_not_by_a_worker(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    (path,) = paths("wait")
    s = settings(urls=(receiver.url(path),), retry_schedule_s=(4,))
    receiver.rule(path, lambda n: 500 if n == 1 else 200)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    (first,) = receiver.wait_for(path, 1)
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: redis_client.hget(keys.delivery(delivery.id), "s") == b"w", what="waiting")
    due = redis_client.zscore(keys.schedule, delivery.id)
    assert due is not None
    assert abs(due / 1000 - (first.at + 4)) < 1.0
    # no message anywhere while it waits: not in the queue, not held unacknowledged
    assert not [m for m in redis_client.lrange(s.queue, 0, -1) if delivery.id.encode() in m]
    assert not [m for m in redis_client.hvals("unacked") if delivery.id.encode() in m]
    assert redis_client.hget(keys.retrying, url_tag(receiver.url(path))) == b"1"
    first, second = receiver.wait_for(path, 2, timeout=15)
    assert 3.9 <= second.at - first.at <= 8.0
    wait_until(lambda: redis_client.get(keys.done(delivery.id)) == b"ok", what="delivered")
    assert not redis_client.exists(keys.delivery(delivery.id))
    assert redis_client.zscore(keys.schedule, delivery.id) is None
    assert redis_client.hget(keys.retrying, url_tag(receiver.url(path))) == b"0"


@pytest.mark.usefixtures("worker")
def test_backlog_is_released_in_emit_order_never_over_the_limit_per_window(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    (path,) = paths("fifo")
    window, limit, count = 2, 20, 100
    s = settings(urls=(receiver.url(path),), rate_limit=limit, rate_window_s=window)
    # the endpoint's adaptive limit on attempts in flight starts at the rate limit, not at 2:
    # admitted deliveries it held back would be admitted again spread over the window, and
    # one sent at its end arrive in the next (no public setting starts it: its health hash)
    health = ScriptKeys(s.prefix).health(url_tag(receiver.url(path)))
    redis_client.hset(health, HealthField.LIMIT.value, limit)
    # emitted at a window's start: the first window's sends (admitted at emit) arrive in it,
    # not in the next (arrivals are counted by the receiver's clock, admissions by Redis's)
    wait_until(lambda: time.time() % window < 0.1, timeout=window + 1, what="a window's start")
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(count)]
    statuses = [d.status for d in sent]
    # (a delivery held back by the endpoint's limit gives its window's slot back: a later
    # emit may take it, so a few more than the limit can be queued; none is sent over it)
    assert statuses.count("deferred") >= count - 2 * limit
    assert statuses.count("queued") + statuses.count("deferred") == count
    got = receiver.wait_for(path, count, timeout=window * (count // limit + 3) + 10)
    arrival_window = {r.header("webhook-id"): int(r.at // window) for r in got}
    assert set(arrival_window) == {d.id for d in sent}
    per_window: dict[int, int] = {}
    for w in arrival_window.values():
        per_window[w] = per_window.get(w, 0) + 1
    assert max(per_window.values()) <= limit, per_window
    # released in emit order: a later emit never arrives in an earlier window
    order = [arrival_window[d.id] for d in sent]
    assert order == sorted(order)
    keys = ScriptKeys(s.prefix)
    deferred = wait_until(
        lambda: [f for _, f in redis_client.xrange(keys.log) if f[b"outcome"] == b"deferred"]
    )
    # each deferred at emit is logged so (and again if it waited across a window: it is
    # admitted again in the window it is sent in)
    deferred_ids = {f[b"id"].decode() for f in deferred}  # type: ignore[union-attr]
    assert {d.id for d in sent if d.status == "deferred"} <= deferred_ids
    assert any(b"rate limit of 20 per 2 s reached" in f[b"error"] for f in deferred)  # type: ignore[index]
    assert not redis_client.exists(keys.backlog(url_tag(receiver.url(path))))


@pytest.mark.usefixtures("worker")
def test_a_full_backlog_dead_letters_at_once_and_the_letter_replays(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    (path,) = paths("full")
    s = settings(urls=(receiver.url(path),), rate_limit=1, rate_window_s=3600, backlog_max=2)
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(5)]
    assert [d.status for d in sent] == ["queued", "deferred", "deferred", "dead", "dead"]
    receiver.wait_for(path, 1)
    letter = dead.get(sent[3].id, s)
    assert letter is not None
    assert letter.reason.startswith("backlog full")
    assert b'"ticket_id":3' in letter.body
    # raise the limit: the backlog drains and the replayed letters go through
    EndpointStore(redis_client, s).add(Endpoint(receiver.url(path), rate_limit=100))
    assert dead.replay(sent[3].id, s)
    assert dead.replay(sent[4].id, s)
    got = receiver.wait_for(path, 5, timeout=20)
    assert {r.header("webhook-id") for r in got} == {d.id for d in sent}
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: all(redis_client.get(keys.done(d.id)) == b"ok" for d in sent), what="all ok")


@pytest.mark.usefixtures("worker")
def test_a_delivery_to_a_removed_endpoint_is_dead_lettered_not_signed_with_the_global_secret(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    (path,) = paths("gone")
    s = settings(retry_schedule_s=(3,))
    store = EndpointStore(redis_client, s)
    own = "own-secret-0123456789abcdef"
    store.add(Endpoint(receiver.url(path), secrets=(own,)))
    receiver.rule(path, lambda n: 500 if n == 1 else 200)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 7})
    receiver.wait_for(path, 1)
    store.remove(receiver.url(path))
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: redis_client.exists(keys.dead(delivery.id)), timeout=15, what="dead")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert "endpoint removed" in letter.reason
    time.sleep(0.5)
    assert len(receiver.requests_to(path)) == 1, "never sent after the removal"
    # the endpoint comes back: the replay is signed with its own secret
    store.add(Endpoint(receiver.url(path), secrets=(own,)))
    assert dead.replay(delivery.id, s)
    _, again = receiver.wait_for(path, 2, timeout=15)
    shahihooks.verify(again.body, again.headers, own)


def test_two_movers_never_publish_one_entry_twice(settings, redis_client: redis.Redis) -> None:
    queue = f"shtest-movers-{uuid.uuid4().hex[:6]}"
    s = settings(urls=("https://127.0.0.1:9/movers",), queue=queue, rate_limit=0)
    app.conf.task_default_queue = queue
    try:
        ids = [shahihooks.emit("ticket.created", {"ticket_id": i})[0].id for i in range(1500)]
        redis_client.delete(queue)  # as if the broker never took them
        state = state_for(s)
        state.unpublished([(i, 1) for i in ids])  # due again in a second, for any mover
        movers = [Mover(publisher, lambda: s) for _ in range(2)]
        stop = threading.Event()
        threads = [threading.Thread(target=m.run, args=(stop,)) for m in movers]
        for t in threads:
            t.start()
        wait_until(lambda: redis_client.llen(queue) >= len(ids), timeout=20, what="published")
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        published = redis_client.lrange(queue, 0, -1)
    finally:
        app.conf.task_default_queue = settings().queue
        redis_client.delete(queue)
    assert len(published) == len(ids)
    names = [m.split(b'"id": "', 1)[1].split(b'"', 1)[0].decode() for m in published]
    assert sorted(names) == sorted(ids)


def cli_json(*args: str) -> object:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("worker")
def test_a_backlog_shows_in_endpoints_list_stats_log_and_doctor(
    settings, receiver: Receiver
) -> None:
    (path,) = paths("shown")
    url = receiver.url(path)
    settings(urls=(url,), rate_limit=2, rate_window_s=3600)
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(5)]
    assert [d.status for d in sent].count("deferred") == 3
    receiver.wait_for(path, 2)
    (row,) = [r for r in cli_json("endpoints", "list") if r["url"] == url]  # type: ignore[attr-defined]
    assert row["waiting"] == 3
    assert row["oldest_wait_s"] >= 0
    assert 0 < row["next_release_in_s"] <= 3600
    stats = [r for r in cli_json("stats") if r["url"] == url]  # type: ignore[attr-defined]
    assert stats
    assert all(r["waiting"] == 3 for r in stats)
    assert sum(r.get("deferred", 0) for r in stats) == 3
    text = CliRunner().invoke(main, ["stats"]).output
    assert "3 in backlog" in text
    result = CliRunner().invoke(main, ["log", "--url", url])
    assert result.output.count("…") == 3
    assert "rate limit of 2 per 3600 s reached" in result.output
    checks = cli_json("doctor", "--no-worker-check")
    (warning,) = [c for c in checks if "in its backlog" in c["what"]]  # type: ignore[attr-defined]
    assert warning["ok"] is False
    assert "growing" in warning["what"]
    assert "--rate-limit" in warning["fix"]
