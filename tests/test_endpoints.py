"""The runtime endpoint store: its own events, secret, rate limit and enabled flag."""

from __future__ import annotations

import uuid

import pytest
import redis

import shahihooks
from shahihooks import checks
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.keys import Keys
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def test_stored_endpoint_gets_its_events_signed_with_its_own_secret(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    path = f"/stored-{uuid.uuid4().hex[:8]}"
    s = settings()
    store = EndpointStore(redis_client, s)
    store.add(
        Endpoint(receiver.url(path), events=("ticket.closed",), secrets=("own-secret-0123456789",))
    )
    assert shahihooks.emit("ticket.created", {"ticket_id": 1}) == []
    (delivery,) = shahihooks.emit("ticket.closed", {"ticket_id": 1})
    (got,) = receiver.wait_for(path, 1)
    assert shahihooks.verify(got.body, got.headers, "own-secret-0123456789")["id"] == delivery.id
    with pytest.raises(shahihooks.InvalidSignature):
        shahihooks.verify(got.body, got.headers, s.secret or "")


def test_disabled_endpoint_receives_nothing(settings, redis_client: redis.Redis) -> None:
    s = settings()
    store = EndpointStore(redis_client, s)
    url = "https://127.0.0.1:9/disabled"
    store.add(Endpoint(url))
    store.set_enabled(url, False)
    # what is emitted to it meanwhile is dead-lettered, replayable (enable --recover)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    assert delivery.status == "dead"
    assert store.get(url) == Endpoint(url, enabled=False)
    assert store.remove(url) is True
    assert store.all() == []


def test_redacted_endpoint_never_shows_a_secret() -> None:
    shown = Endpoint("https://x.example/h", secrets=("hunter2-secret",)).redacted()
    assert "hunter2-secret" not in repr(shown)
    assert shown["secrets"] == "1 own"


def test_one_redis_keeps_one_copy_without_a_version(settings, redis_client: redis.Redis) -> None:
    """The copies' versions and doctor's line about them are a Redis Cluster's only."""
    s = settings()
    store = EndpointStore(redis_client, s)
    store.add(Endpoint("https://127.0.0.1:9/one-copy"))
    assert redis_client.exists(Keys(s.prefix).endpoints)
    assert not redis_client.exists(Keys(s.prefix).endpoints_version)
    synced = store.sync()
    assert (len(synced.best.entries), synced.written, synced.skipped) == (1, [], [])
    assert not any("copies" in c.what for c in checks.state_checks(s))
