"""`emit()`: validate an event, store its body once, enqueue one task per endpoint.

Everything that can be refused is refused here, before anything is enqueued: an unknown
event, data that is not JSON, a body over the size limit, an unsafe target, a missing
secret. Then one Redis round trip stores the body (and checks the `key` and the throttle),
and one pipelined round trip publishes every task of the emit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from shahihooks.connections import redis_client, script
from shahihooks.endpoints import resolve, stored_endpoints
from shahihooks.errors import PayloadError, UnavailableError
from shahihooks.events import registry
from shahihooks.hooks import hooks
from shahihooks.keys import Keys, url_tag
from shahihooks.payload import check_size, encode_data
from shahihooks.publish import Job, direct_queue, publish, task_messages
from shahihooks.safety import redact_url
from shahihooks.settings import Settings, Throttle, current

logger = logging.getLogger("shahihooks.emit")


@dataclass(frozen=True)
class Delivery:
    """One enqueued delivery: its id (stable across retries) and where it goes."""

    id: str
    url: str
    event: str


def message_id(key: str | None) -> str:
    """The id of one emitted event: random, or derived from `key` (deterministic)."""
    if key is None:
        return "evt_" + uuid.uuid4().hex
    return "evt_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def delivery_id(msg_id: str, url: str) -> str:
    return f"{msg_id}-{url_tag(url)}"


@dataclass(frozen=True)
class Prepared:
    """An event that passed every check that needs no Redis; `send()` enqueues it."""

    event: str
    data: Any
    data_json: str
    key: str | None
    settings: Settings
    throttle: Throttle | None
    throttle_value: object  # data[throttle.field]; its JSON keys the throttle (1 != "1")

    def send(self) -> list[Delivery]:
        return _send(self)


def prepare(
    event: str,
    data: Mapping[str, Any] | Any,
    *,
    key: str | None = None,
    settings: Settings | None = None,
) -> Prepared:
    """Validate `event` and `data` (raising a ShahihooksError naming the problem)."""
    settings = settings or current()
    registry.get(event)
    if key is not None and (not isinstance(key, str) or not key):
        raise PayloadError(f"key must be a non-empty string, got {key!r}")
    data_json = encode_data(data)
    check_size(data_json, event, settings.site_url, settings.max_body_bytes)
    throttle = _throttle_for(event, settings)
    value = _throttle_value(event, data, throttle)
    return Prepared(event, data, data_json, key, settings, throttle, value)


def emit(
    event: str,
    data: Mapping[str, Any] | Any,
    *,
    key: str | None = None,
    settings: Settings | None = None,
) -> list[Delivery]:
    """Send `event` with `data` to every endpoint subscribed to it; return the deliveries.

    With `key`, emitting the same key again (within the idempotency TTL) enqueues nothing
    and returns the first emit's deliveries.
    """
    return prepare(event, data, key=key, settings=settings).send()


def _send(p: Prepared) -> list[Delivery]:
    try:
        return _enqueue(p)
    except redis.RedisError as exc:
        raise UnavailableError(
            f"Redis at {redact_url(p.settings.redis_url)} is unreachable "
            f"({type(exc).__name__}: {exc}); nothing was enqueued for {p.event}"
        ) from exc


def _enqueue(p: Prepared) -> list[Delivery]:
    settings, event, key, throttle = p.settings, p.event, p.key, p.throttle
    if not settings.enabled:
        logger.info("webhooks are disabled (SHAHIHOOKS_ENABLED=0): %s not sent", event)
        return []
    client = redis_client(settings.redis_url)
    keys = Keys(settings.prefix)
    targets = resolve(event, settings, stored_endpoints(client, settings), hooks)
    if not targets:
        logger.debug("no endpoint subscribes to %s", event)
        return []

    msg_id = message_id(key)
    deliveries = [Delivery(delivery_id(msg_id, t.url), t.url, event) for t in targets]
    jobs = [Job(d.id, d.url, d.event) for d in deliveries]
    listed = json.dumps([[d.id, d.url] for d in deliveries])
    queue = _same_redis_queue(settings)
    messages = task_messages(_app(), jobs, queue) if queue else []
    result = script(client, "emit")(
        keys=[
            keys.emitted(key) if key is not None else "",
            keys.throttle(event, p.throttle_value) if throttle else "",
            keys.body(msg_id),
            queue or "",
            keys.pending,
            keys.pending_at,
        ],
        args=[
            listed,
            settings.idempotency_ttl_s,
            throttle.window_s if throttle else 0,
            event,
            int(time.time()),
            settings.site_url,
            p.data_json,
            len(deliveries),
            *messages,
        ],
    )
    verdict = result[0].decode() if isinstance(result[0], bytes) else result[0]
    if verdict == "duplicate":
        logger.info("%s with key %r was emitted before: nothing enqueued", event, key)
        return [Delivery(i, u, event) for i, u in json.loads(result[1])]
    if verdict == "throttled":
        logger.debug("%s throttled for %s=%r", event, throttle and throttle.field, p.throttle_value)
        return []
    if queue:
        return deliveries  # the Lua call pushed the tasks too
    try:
        publish(jobs)
    except Exception:
        _undo(client, keys, key, msg_id, throttle, event, p.throttle_value)
        raise
    return deliveries


def _app() -> Any:
    from shahihooks.app import app

    return app


def _same_redis_queue(settings: Settings) -> str | None:
    """The queue to push onto inside the emit script: only if the broker is this Redis."""
    app = _app()
    if str(app.conf.broker_url) != settings.redis_url:
        return None
    return direct_queue(app)


def _throttle_for(event: str, settings: Settings) -> Throttle | None:
    for throttle in settings.throttles:
        if throttle.event == event:
            return throttle
    return None


def _throttle_value(event: str, data: Any, throttle: Throttle | None) -> object:
    if throttle is None:
        return ""
    value = data.get(throttle.field) if isinstance(data, Mapping) else None
    if value is None:
        got = sorted(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
        raise PayloadError(
            f"{event} is throttled per {throttle.field!r}, but the data has no "
            f"{throttle.field!r} field (got: {got})"
        )
    return value


def _undo(
    client: Any,
    keys: Keys,
    key: str | None,
    msg_id: str,
    throttle: Throttle | None,
    event: str,
    throttle_value: object,
) -> None:
    """Forget a half-done emit, so that emitting it again is not mistaken for a duplicate."""
    names = [keys.body(msg_id)]
    if key is not None:
        names.append(keys.emitted(key))
    if throttle is not None:
        names.append(keys.throttle(event, throttle_value))
    try:
        client.delete(*names)
    except Exception:
        logger.exception("could not undo the emit of %s (%s)", event, msg_id)
