"""Messages pushed straight onto a Redis list are the messages kombu would have published;
under any configuration where they would not be, publishing goes through kombu."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import signals
from kombu import Exchange, Queue

from shahihooks.app import app, create_app, publisher
from shahihooks.publish import Message, Publisher
from shahihooks.settings import current
from tests.conftest import wait_until


def decoded(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    message["properties"].pop("delivery_tag")  # a fresh uuid per message
    return message


@pytest.fixture
def queue(settings, redis_client: redis.Redis) -> Iterator[str]:
    name = f"shtest-envelope-{uuid.uuid4().hex[:6]}"
    settings(queue=name)
    yield name
    redis_client.delete(name)


def test_the_direct_envelope_is_kombus_own(queue: str, redis_client: redis.Redis) -> None:
    assert publisher.direct_queue() == queue
    m = Message("evt_abc-123456789012", 3, "ticket.created", "https://h.example/x?***", 2)
    publisher.publish_through_kombu([m])
    (kombus,) = redis_client.rpop(queue, 1)  # type: ignore[misc]
    redis_client.lpush(queue, *publisher.encode([m], queue))
    (ours,) = redis_client.rpop(queue, 1)  # type: ignore[misc]
    assert decoded(ours) == decoded(kombus)


@pytest.mark.parametrize(
    "change",
    [
        {"task_serializer": "pickle"},
        {"task_compression": "gzip"},
        {"broker_use_ssl": {"ssl_cert_reqs": "required"}},
        {"task_default_priority": 5},
    ],
)
def test_any_configuration_kombu_would_write_differently_goes_through_kombu(
    queue: str, change: dict[str, object]
) -> None:
    saved = {k: app.conf[k] for k in change}
    app.conf.update(change)
    publisher.forget()  # as configure() does: the publisher works its route out again
    try:
        assert publisher.direct_queue() is None
    finally:
        app.conf.update(saved)
        publisher.forget()
    assert publisher.direct_queue() == queue


def test_a_queue_bound_to_a_fanout_exchange_goes_through_kombu(queue: str) -> None:
    own = create_app(current())
    own.conf.task_queues = [Queue(queue, Exchange(queue, type="fanout"))]
    assert Publisher(own).direct_queue() is None
    assert Publisher(create_app(current())).direct_queue() == queue


def test_a_publish_signal_receiver_sends_messages_through_kombu(queue: str) -> None:
    def seen(**_: object) -> None:
        pass

    signals.before_task_publish.connect(seen)
    try:
        assert publisher.direct_queue() is None
    finally:
        signals.before_task_publish.disconnect(seen)
    assert publisher.direct_queue() == queue


def test_a_broker_configured_anew_is_the_one_published_to(
    settings, redis_client: redis.Redis, queue: str
) -> None:
    """configure() with another broker: Celery's pools for the first one are not kept."""
    from kombu import Connection

    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    m = Message("evt_abc-123456789012", 1, "ticket.created", "https://h.example/x", 1)
    try:
        settings(queue=queue, broker_url=amqp)
        publisher.publish_through_kombu([m])

        def depth() -> int:
            with Connection(amqp) as conn:
                return int(conn.default_channel.queue_declare(queue, passive=True).message_count)

        assert wait_until(lambda: depth() == 1, timeout=10)
        settings(queue=queue)  # the Redis broker again
        publisher.publish_through_kombu([m])
        assert redis_client.llen(queue) == 1
    finally:
        with Connection(amqp) as conn:
            conn.default_channel.queue_delete(queue)
