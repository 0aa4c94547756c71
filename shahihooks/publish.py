"""Publishing delivery messages: `shahihooks.deliver(delivery_id, token, v=1)`, nothing more
(`v`: the message schema, schema.py; a worker never drops a message it cannot read).

A message names its delivery and carries its fencing token; the URL, the body and the
secrets stay in Redis, so `celery inspect` and Flower show no credential (their argsrepr
reads "ticket.created → https://host/path?*** (attempt 2)", with the URL masked).

With a Redis broker and a configuration under which kombu would write exactly that — JSON,
no compression, no publish signals, no broker TLS options, the default direct routing, no
priorities or key prefix — messages are built with Celery's own `create_task_message` in
kombu's Redis envelope and pushed onto the queue in one LPUSH (inside the emit script when
the broker is the state Redis); a test compares the envelope with kombu's own. Anything
else — RabbitMQ, the user's serializer or routes — goes through kombu's batched publish.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals

from shahihooks.celeryconf import is_redis
from shahihooks.connections import redis_client
from shahihooks.schema import MESSAGE_SCHEMA
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
    def kwargs(self) -> dict[str, int]:
        return {"v": MESSAGE_SCHEMA}

    @property
    def argsrepr(self) -> str:
        return f"{self.event} → {self.shown_url} (attempt {self.attempt})"


@dataclass(frozen=True)
class _Template:
    """What every message of one queue shares, from Celery's own `create_task_message`:
    each message then changes only its id, arguments, attempt and tag."""

    headers: dict[str, Any]
    embed: Any
    properties: dict[str, Any]


def _tag() -> str:
    """A random tag in uuid4's form, as kombu writes delivery tags."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


class Publisher:
    """Publishes delivery messages with one Celery app's configuration.

    Where messages go, and their shape, are worked out once per configuration: `forget()`
    when it changes (`configure()` does).
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._direct: list[str | None] = []  # [] until worked out
        self._templates: dict[tuple[int, str], _Template] = {}

    def forget(self) -> None:
        self._direct.clear()
        self._templates.clear()

    @property
    def broker_url(self) -> str:
        return str(self.app.conf.broker_url or "")

    @property
    def broker_client(self) -> Any:
        """The broker's Redis, directly (only for a Redis broker)."""
        master = (self.app.conf.broker_transport_options or {}).get("master_name", "mymaster")
        return redis_client(self.broker_url, master)

    @property
    def queue(self) -> str:
        return str(self.app.conf.task_default_queue)

    def direct_queue(self) -> str | None:
        """The Redis list the deliver task goes to, if messages can be pushed there directly
        (byte for byte what kombu would push), else None: publish through kombu."""
        if signals.before_task_publish.receivers or signals.after_task_publish.receivers:
            return None
        if not self._direct:
            self._direct.append(self._direct_queue())
        return self._direct[0]

    def _direct_queue(self) -> str | None:
        conf = self.app.conf
        if not is_redis(self.broker_url) or conf.broker_use_ssl:
            return None
        if conf.task_serializer != "json" or conf.task_compression or conf.task_protocol != 2:
            return None
        if conf.task_default_priority is not None or conf.task_queue_max_priority is not None:
            return None
        if (conf.broker_transport_options or {}).get("global_keyprefix"):
            return None
        route = self.app.amqp.router.route({}, TASK_NAME, (), {})
        queue = route.get("queue")
        if queue is None or route.get("priority") is not None:
            return None
        exchange = queue.exchange
        if getattr(exchange, "name", "") not in ("", queue.name):
            return None
        if getattr(exchange, "type", "direct") != "direct":
            return None
        if (queue.routing_key or queue.name) != queue.name or route.get("compression"):
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

    def _template(self, queue: str) -> _Template:
        key = (os.getpid(), queue)
        found = self._templates.get(key)
        if found is None:
            msg = self.app.amqp.create_task_message(
                "-",
                TASK_NAME,
                ("-", 0),
                {},
                retries=0,
                argsrepr="-",
                kwargsrepr="{}",
                ignore_result=True,
                root_id="-",
                origin=f"gen{os.getpid()}@{socket.gethostname()}",
            )
            properties = {
                **msg.properties,
                "reply_to": self.app.thread_oid,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "kwargsrepr": "{}",  # send_task's options reach the properties: kombu's too
            }
            found = self._templates[key] = _Template(msg.headers, msg.body[2], properties)
        return found

    def encode(self, messages: Sequence[Message], queue: str) -> list[str]:
        """Celery protocol-2 messages in kombu's Redis envelope, ready for LPUSH."""
        template = self._template(queue)
        out = []
        for m in messages:
            body = json.dumps((m.args, m.kwargs, template.embed)).encode()
            headers = {
                **template.headers,
                "id": m.delivery_id,
                "root_id": m.delivery_id,
                "argsrepr": m.argsrepr,
                "retries": m.attempt - 1,
            }
            properties = {
                **template.properties,
                "correlation_id": m.delivery_id,
                "delivery_tag": _tag(),
                "argsrepr": m.argsrepr,
            }
            out.append(
                json.dumps(
                    {
                        "body": base64.b64encode(body).decode("ascii"),
                        "content-encoding": "utf-8",
                        "content-type": "application/json",
                        "headers": headers,
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
            self.broker_client.lpush(queue, *self.encode(messages, queue))
        else:
            self.publish_through_kombu(messages)

    def publish_through_kombu(self, messages: Sequence[Message]) -> None:
        app = self.app
        with app.producer_or_acquire() as producer, producer.batch():
            for m in messages:
                app.send_task(
                    TASK_NAME,
                    m.args,
                    m.kwargs,
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
            return int(self.broker_client.llen(self.queue))
        with self.app.connection_for_read() as conn:
            channel: Any = conn.default_channel
            ok = channel.queue_declare(self.queue, passive=True)
            return int(ok.message_count)
