"""`emit()`: validate an event, store its body once, enqueue one task per endpoint.

Everything that can be refused is refused here, before anything is enqueued: an unknown
event, data that is not JSON, a body over the size limit, an unsafe target, a missing
secret. Then one Redis round trip stores the body, checks the `key` and the throttle, gives
each delivery its record and its URL's rate-limit verdict, and — when the broker is that
Redis — pushes the messages of the queued ones. With another broker, one pipelined round
trip publishes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from shahihooks import shards, tracing
from shahihooks.app import publisher
from shahihooks.connections import full_message
from shahihooks.endpoints import Endpoint, endpoints_for, stored_endpoints, target_refusal
from shahihooks.errors import OutcomeUnknown, PayloadError, RedisFull, UnavailableError
from shahihooks.events import registry
from shahihooks.hooks import hooks
from shahihooks.keys import url_tag
from shahihooks.payload import check_size, encode_data
from shahihooks.publish import Message
from shahihooks.safety import redact_url
from shahihooks.settings import Settings, Throttle, current
from shahihooks.signing import fingerprint
from shahihooks.state import MaybeSent, NotSent, StoredEvent, Target

logger = logging.getLogger("shahihooks.emit")


@dataclass(frozen=True)
class Delivery:
    """One enqueued delivery: its id (stable across retries) and where it goes.

    `status` says where emit put it: "queued", "deferred" (it waits in the URL's backlog:
    its rate limit is reached, or its endpoint's circuit is open), "dead" (dead-lettered,
    replayable: that backlog was full, the endpoint is disabled, or the target was refused —
    `reason` says which) or "duplicate" (an earlier emit with the same key made it).
    """

    id: str
    url: str
    event: str
    status: str = field(default="queued", compare=False)
    reason: str = field(default="", compare=False)

    def __repr__(self) -> str:  # URLs may carry credentials: shown masked, as everywhere
        return (
            f"Delivery(id={self.id!r}, url={redact_url(self.url)!r}, event={self.event!r}, "
            f"status={self.status!r}" + (f", reason={self.reason!r})" if self.reason else ")")
        )


def message_id(key: str | None) -> str:
    """The id of one emitted event: random, or derived from `key` (deterministic)."""
    if key is None:
        return "evt_" + os.urandom(16).hex()
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
    timestamp: int | None = None  # when it happened (Unix s); None: when it is sent
    operational: bool = False  # an operational event (ops.py): to SHAHIHOOKS_OPS_URLS only

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


def emit_operational(
    event: str, data: dict[str, Any], *, key: str, at_s: int, settings: Settings
) -> list[Delivery]:
    """Send an operational event (ops.py) to SHAHIHOOKS_OPS_URLS, signed with their secret."""
    data_json = encode_data(data)
    return Prepared(event, data, data_json, key, settings, None, "", at_s, True).send()


EMIT_TRIES = 3
_UNREACHABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    redis.exceptions.AskError,  # a Redis Cluster's slot moved or migrating (MovedError too)
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)


def _send(p: Prepared) -> list[Delivery]:
    """Enqueue, trying again on an outage: a try whose step had run changes nothing."""
    nonce = os.urandom(8).hex()
    msg_id = message_id(p.key)  # one for every try: a try whose step had run is found again
    may_have_run = False
    cause: BaseException | None = None
    stored: dict[str, Message] = {}  # queued by steps that ran, in tries that then failed
    for tried in range(EMIT_TRIES):
        if tried:
            time.sleep(0.1 * 2**tried)
        try:
            return _enqueue(p, nonce, msg_id, stored)
        except MaybeSent as exc:
            may_have_run, cause = True, exc.__cause__
        except NotSent as exc:
            cause = exc.__cause__
        except _UNREACHABLE as exc:
            cause = exc
        except redis.exceptions.OutOfMemoryError as exc:  # refused before it ran
            url = p.settings.redis_url
            raise RedisFull(full_message(url, f"nothing was enqueued for {p.event}")) from exc
    where = f"Redis at {redact_url(p.settings.redis_url)}"
    why = f"{type(cause).__name__}: {cause}"
    if stored:  # no try got through: what is stored is sent all the same (not in a minute)
        _publish(p.settings, list(stored.values()), p.event)
    if may_have_run:
        again = (
            f"emit it again with the same key ({p.key!r}): a duplicate is dropped"
            if p.key is not None
            else "emitting it again may send it twice; emit with key=... to make that safe"
        )
        raise OutcomeUnknown(
            f"{where} stopped answering after {p.event} was sent to it ({why}): it may or "
            f"may not have been enqueued; {again}"
        ) from cause
    raise UnavailableError(f"{where} is unreachable ({why}); nothing was enqueued for {p.event}")


def _enqueue(p: Prepared, nonce: str, msg_id: str, stored: dict[str, Message]) -> list[Delivery]:
    """One try; the messages of what a try that failed partway had queued go to `stored`
    (a broker that is not the state Redis: published by `_send` if no try succeeds)."""
    settings, event, key, throttle = p.settings, p.event, p.key, p.throttle
    if not settings.enabled:
        logger.info("webhooks are disabled (SHAHIHOOKS_ENABLED=0): %s not sent", event)
        return []
    targets = _targets(p, msg_id)
    if not targets:
        logger.debug("no endpoint subscribes to %s", event)
        return []
    messages = [Message(t.delivery_id, 1, event, t.shown_url) for t in targets]
    queue = publisher.same_redis_queue(settings)
    new = StoredEvent(
        msg_id=msg_id,
        event=event,
        timestamp=int(time.time()) if p.timestamp is None else p.timestamp,
        data_json=p.data_json,
        nonce=nonce,
        queue=queue or "",
        key=key,
        throttle=(p.throttle_value, throttle.window_s) if throttle else None,
        fingerprint=fingerprint(settings.ops_secrets if p.operational else settings.secrets),
        traceparent=tracing.current_traceparent() or "",
    )
    encoded = publisher.encode(messages, queue) if queue else []
    try:
        emitted = shards.emit(settings, new, targets, encoded)
    except MaybeSent as exc:
        if not queue:
            stored.update((m.delivery_id, m) for m in _of(messages, exc.stored))
        raise
    if emitted.duplicate_of is not None:
        logger.info("%s with key %r was emitted before: nothing enqueued", event, key)
        if not queue and emitted.completed:  # steps its first emit never ran, run now
            _publish(settings, _of(messages, emitted.completed), event)
        return [Delivery(i, u, event, "duplicate") for i, u in emitted.duplicate_of]
    if emitted.throttled:
        logger.debug("%s throttled for %s=%r", event, throttle and throttle.field, p.throttle_value)
        return []
    queued = [m for m, placed in zip(messages, emitted.placed, strict=True) if placed == "queued"]
    if not queue and queued:
        _publish(settings, queued, event)
    for t in targets:
        if t.refused:
            logger.warning("%s -> %s dead-lettered at emit: %s", event, t.shown_url, t.refused)
    return [
        Delivery(t.delivery_id, t.url, event, placed.value, t.refused)
        for t, placed in zip(targets, emitted.placed, strict=True)
    ]


def _of(messages: list[Message], ids: Sequence[str]) -> list[Message]:
    wanted = set(ids)
    return [m for m in messages if m.delivery_id in wanted]


def _targets(p: Prepared, msg_id: str) -> list[Target]:
    """One target per endpoint that receives the event; one whose URL is refused is still a
    target (dead-lettered at once with the reason): it never fails the emit for the others."""
    settings = p.settings
    if p.operational:
        endpoints = [Endpoint(url, rate_limit=0) for url in settings.ops_urls]
        source = {url: "ops" for url in settings.ops_urls}
    else:
        stored = _stored(settings)
        endpoints = endpoints_for(p.event, settings, stored, hooks)
        # a URL of SHAHIHOOKS_URLS is checked at every attempt against the worker's list
        source = {**{url: "urls" for url in settings.urls}, **{e.url: "store" for e in stored}}
    return [
        Target(
            delivery_id(msg_id, e.url),
            url_tag(e.url),
            e.url,
            redact_url(e.url),
            settings.rate_limit if e.rate_limit is None else e.rate_limit,
            source.get(e.url, ""),
            target_refusal(e, settings),
        )
        for e in endpoints
    ]


def _stored(settings: Settings) -> list[Endpoint]:
    """The runtime endpoints, from the first shard whose primary answers: the store is
    written to every shard, so one primary away (a failover) does not stop every emit."""
    away: set[int] = set()  # the connection pools of the primaries that did not answer
    for state in shards.shards(settings):
        client = state.client
        if id(client.connection_pool) in away:
            continue  # another shard of the same primary
        try:
            return stored_endpoints(client, settings, state.keys)
        except _UNREACHABLE as exc:
            away.add(id(client.connection_pool))
            cause = exc
    raise cause


def _publish(settings: Settings, messages: list[Message], event: str) -> None:
    """Publish to a broker that is not the state Redis; its failure loses nothing."""
    try:
        publisher.publish(messages)
    except Exception as exc:
        # the deliveries are safe in Redis: the workers' movers publish them when they can
        logger.warning(
            "the broker did not take %d message(s) of %s (%s: %s): a worker publishes them "
            "as soon as the broker answers",
            len(messages),
            event,
            type(exc).__name__,
            exc,
        )
        # if Redis is away too, a worker finds them unpublished later (the lost-message check)
        tokens = {m.delivery_id: m.token for m in messages}
        for state, ids in shards.by_shard(settings, list(tokens)):
            with contextlib.suppress(*_UNREACHABLE):
                state.unpublished([(i, tokens[i]) for i in ids])


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
