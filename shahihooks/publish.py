"""Publishing delivery messages: `shahihooks.deliver(delivery_id, token)`, nothing more.

A message names its delivery and carries its fencing token; the URL, the body and the
secrets stay in Redis, so `celery inspect` and Flower show no credential (their argsrepr
reads "ticket.created → https://host/path?*** (attempt 2)", with the URL masked).

With a Redis broker and Celery's default routing, messages are built with Celery's own
`create_task_message` and pushed onto the queue in one LPUSH (inside the emit script when
the broker is the state Redis). Anything else — RabbitMQ, custom routes, priorities — goes
through kombu's batched publish, one connection, pipelined.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from shahihooks.celeryconf import is_redis
from shahihooks.connections import redis_client
from shahihooks.settings import Settings

TASK_NAME = "shahihooks.deliver"


@dataclass(frozen=True)
class Message:
    """One message to publish: a delivery's next (or first) attempt."""

    delivery_id: str
    token: int
    event: str
    shown_url: str  # credentials masked: this is what Flower shows
    attempt: int = 1

    @property
    def args(self) -> tuple[str, int]:
        return (self.delivery_id, self.token)

    @property
    def argsrepr(self) -> str:
        return f"{self.event} → {self.shown_url} (attempt {self.attempt})"


class Publisher:
    """Publishes delivery messages with one Celery app's configuration."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    @property
    def broker_url(self) -> str:
        return str(self.app.conf.broker_url or "")

    @property
    def queue(self) -> str:
        return str(self.app.conf.task_default_queue)

    def direct_queue(self) -> str | None:
        """The Redis list the deliver task goes to, if messages can be pushed there directly."""
        conf = self.app.conf
        if not is_redis(self.broker_url):
            return None
        if conf.task_default_priority is not None or conf.task_queue_max_priority is not None:
            return None
        if (conf.broker_transport_options or {}).get("global_keyprefix"):
            return None
        route = self.app.amqp.router.route({}, TASK_NAME, (), {})
        queue = route.get("queue")
        if queue is None or route.get("priority") is not None:
            return None
        exchange = getattr(queue.exchange, "name", "")
        if exchange not in ("", queue.name) or (queue.routing_key or queue.name) != queue.name:
            return None
        return str(queue.name)

    def same_redis_queue(self, settings: Settings) -> str | None:
        """The queue to push onto inside a state script: only if the broker is that Redis.

        Routed as Celery routes it, to `settings.queue` under the default routing: the
        settings of an emit (a Flask app's own) may name other than this process's.
        """
        if settings.broker_url != settings.redis_url:
            return None
        queue = self.direct_queue()
        return settings.queue if queue is not None and queue == self.queue else queue

    def encode(self, messages: Sequence[Message], queue: str) -> list[str]:
        """Celery protocol-2 messages in kombu's Redis envelope, ready for LPUSH."""
        app = self.app
        origin = f"gen{os.getpid()}@{socket.gethostname()}"
        out = []
        for m in messages:
            msg = app.amqp.create_task_message(
                m.delivery_id,
                TASK_NAME,
                m.args,
                {},
                retries=m.attempt - 1,
                argsrepr=m.argsrepr,
                kwargsrepr="{}",
                ignore_result=True,
                root_id=m.delivery_id,
                origin=origin,
            )
            body = json.dumps(msg.body).encode()
            properties: dict[str, Any] = {
                **msg.properties,
                "correlation_id": m.delivery_id,
                "reply_to": app.thread_oid,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            }
            out.append(
                json.dumps(
                    {
                        "body": base64.b64encode(body).decode("ascii"),
                        "content-encoding": "utf-8",
                        "content-type": "application/json",
                        "headers": msg.headers,
                        "properties": properties,
                    }
                )
            )
        return out

    def publish(self, messages: Sequence[Message]) -> None:
        """Publish `messages` in one round trip to the broker."""
        if not messages:
            return
        queue = self.direct_queue()
        if queue is not None:
            redis_client(self.broker_url).lpush(queue, *self.encode(messages, queue))
            return
        app = self.app
        with app.producer_or_acquire() as producer, producer.batch():
            for m in messages:
                app.send_task(
                    TASK_NAME,
                    m.args,
                    task_id=m.delivery_id,
                    producer=producer,
                    argsrepr=m.argsrepr,
                    kwargsrepr="{}",
                    retries=m.attempt - 1,
                    ignore_result=True,
                )

    def queue_size(self) -> int:
        """Messages waiting in the deliveries' queue (not those taken by workers)."""
        if is_redis(self.broker_url):
            return int(redis_client(self.broker_url).llen(self.queue))
        with self.app.connection_for_read() as conn:
            channel: Any = conn.default_channel
            ok = channel.queue_declare(self.queue, passive=True)
            return int(ok.message_count)
