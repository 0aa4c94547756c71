"""Publishing delivery tasks: every task of one emit in a single round trip.

With a Redis broker and Celery's default routing, the task messages are built with Celery's
own `create_task_message` and pushed onto the queue in one LPUSH (in the same Lua call that
stores the body, when the broker is the state Redis). Anything else — RabbitMQ, custom
routes, priorities — goes through kombu's batched publish, one connection, pipelined.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from shahihooks.connections import redis_client, script
from shahihooks.keys import Keys
from shahihooks.safety import redact_url
from shahihooks.settings import Settings

TASK_NAME = "shahihooks.deliver"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class Job:
    """One task to publish: a delivery's next attempt."""

    delivery_id: str
    url: str
    event: str
    attempt: int = 1
    countdown_s: float | None = None


def describe(event: str, url: str, attempt: int) -> str:
    """How a delivery reads in Flower and the worker log: no secret, no body."""
    return f"{event} → {redact_url(url)} (attempt {attempt})"


def direct_queue(app: Celery) -> str | None:
    """The Redis list the deliver task goes to, if messages can be pushed there directly."""
    conf = app.conf
    if not str(conf.broker_url or "").startswith(_REDIS_SCHEMES):
        return None
    if conf.task_default_priority is not None or conf.task_queue_max_priority is not None:
        return None
    if (conf.broker_transport_options or {}).get("global_keyprefix"):
        return None
    route = app.amqp.router.route({}, TASK_NAME, (), {})
    queue = route.get("queue")
    if queue is None or route.get("priority") is not None:
        return None
    exchange = getattr(queue.exchange, "name", "")
    if exchange not in ("", queue.name) or (queue.routing_key or queue.name) != queue.name:
        return None
    return str(queue.name)


def task_messages(app: Celery, jobs: Sequence[Job], queue: str) -> list[str]:
    """Celery protocol-2 messages in kombu's Redis envelope, ready for LPUSH."""
    origin = f"gen{_pid()}@{socket.gethostname()}"
    out = []
    for job in jobs:
        repr_args = describe(job.event, job.url, job.attempt)
        msg = app.amqp.create_task_message(
            job.delivery_id,
            TASK_NAME,
            (job.delivery_id, job.url, job.event, job.attempt),
            {},
            countdown=job.countdown_s,
            retries=job.attempt - 1,
            argsrepr=repr_args,
            kwargsrepr="{}",
            ignore_result=True,
            root_id=job.delivery_id,
            origin=origin,
        )
        body = json.dumps(msg.body).encode()
        properties: dict[str, Any] = {
            **msg.properties,
            "correlation_id": job.delivery_id,
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


def publish(jobs: Sequence[Job]) -> None:
    """Publish `jobs` in one round trip to the broker."""
    from shahihooks.app import app

    if not jobs:
        return
    queue = direct_queue(app)
    if queue is not None:
        redis_client(str(app.conf.broker_url)).lpush(queue, *task_messages(app, jobs, queue))
        return
    from shahihooks.tasks import deliver

    with app.producer_or_acquire() as producer, producer.batch():
        for job in jobs:
            options: dict[str, Any] = {
                "argsrepr": describe(job.event, job.url, job.attempt),
                "kwargsrepr": "{}",
                "retries": job.attempt - 1,
                "countdown": job.countdown_s,
            }
            deliver.apply_async(
                (job.delivery_id, job.url, job.event, job.attempt),
                task_id=job.delivery_id,
                producer=producer,
                **options,
            )


def reschedule(job: Job, finished_attempt: int | None, settings: Settings) -> None:
    """Queue the next attempt (with its countdown); then mark `finished_attempt` done.

    The mark is what lets a stale copy of a finished attempt be dropped, so it is written
    only once the successor is queued: in the same Lua call when the broker is the state
    Redis, else right after the publish.
    """
    from shahihooks.app import app

    queue = direct_queue(app)
    keys = Keys(settings.prefix)
    mark = "" if finished_attempt is None else str(finished_attempt)
    pending = json.dumps([job.url, job.event, job.attempt])
    now = f"{time.time():.3f}"
    client = redis_client(settings.redis_url)
    if queue is not None and str(app.conf.broker_url) == settings.redis_url:
        (message,) = task_messages(app, [job], queue)
        script(client, "reschedule")(
            keys=[queue, keys.done(job.delivery_id), keys.pending, keys.pending_at],
            args=[message, mark, settings.idempotency_ttl_s, job.delivery_id, pending, now],
        )
        return
    publish([job])
    script(client, "reschedule_mark")(
        keys=[keys.done(job.delivery_id), keys.pending, keys.pending_at],
        args=[mark, settings.idempotency_ttl_s, job.delivery_id, pending, now],
    )


def _pid() -> int:
    return os.getpid()
