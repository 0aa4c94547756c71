"""kombu's Redis transport, with a fix so that a worker survives a Redis restart, and one
client per pool instead of one per acknowledgement; and the acknowledgement shortcut, whole.

The shortcut: when the broker is the state Redis, an attempt's message is acknowledged in
the step that records its outcome (finish.lua removes kombu's record of it as
unacknowledged), and the worker's own acknowledgement that follows sends nothing. Everything
it knows of kombu and Celery is here: `ack_for` (the message to acknowledge, from the task's
request), `after_attempt` and `deliver_request()` (telling the channel it was done), the
channel's `QoS.ack` (skipping the round trip). `deliver` only passes the Ack along.

Celery 5.7's consumer, on losing the broker, collects the connection (its `client` becomes
None) and then closes it; closing a Redis channel requeues its unacknowledged messages,
which needs connection parameters from that `client`: an AttributeError that Celery treats
as unrecoverable, and the worker exits. Here the missing client is a connection error
instead, which Celery ignores while it reconnects; the messages stay recorded as
unacknowledged in Redis and come back after the visibility timeout.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from shahihooks import roundtrip
from shahihooks.app import publisher
from shahihooks.settings import Settings, current
from shahihooks.statetypes import Ack

logger = logging.getLogger("shahihooks.broker")


class _ClosedIsAConnectionError:
    connection: Any

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class _OneClientPerPool:
    """kombu builds a new redis.Redis around the same pool for every acknowledgement and
    every message it records as unacknowledged; a client is only a handle on its pool (and
    safe across threads), and building one costs more than the commands it sends (about a
    tenth of a worker's time per delivery, measured). One is kept per pool."""

    pool: Any
    _client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        client = self._client
        if client is None or client.connection_pool is not self.pool:
            client = self._client = super()._create_client()  # type: ignore[misc]
        return client


_RECORD = (
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])"
)
_FORGET = "redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('HDEL', KEYS[2], ARGV[1])"


class RenewalStreak:
    """Renewals of the held messages that failed in a row. An operator hears of a streak
    twice, however long it lasts: a warning at its first failure, and a line when a renewal
    reaches Redis again. A worker holding nothing renews nothing: the streak then ends with
    the next renewal it makes."""

    def __init__(self) -> None:
        self.failures = 0

    def failed(self, exc: redis.RedisError, visibility_timeout_s: float) -> None:
        self.failures += 1
        if self.failures == 1:
            logger.warning(
                "held messages not renewed (%s: %s): a message this worker holds that goes "
                "%g s (the visibility timeout) without a renewal is given back to the queue "
                "and taken again; its delivery is still sent once (a copy of one begun or "
                "done is dropped). Said once until renewals resume",
                type(exc).__name__,
                exc,
                visibility_timeout_s,
            )

    def succeeded(self) -> None:
        if self.failures:
            logger.warning("held messages: renewal resumed after %d failures", self.failures)
        self.failures = 0


class QoS(kombu_redis.QoS):
    """kombu's record of unacknowledged messages, written as kombu writes it (the same keys
    and values, atomically), by one script call instead of a MULTI pipeline per message.

    A Redis at its maxmemory (noeviction) refuses every write, and every command inside
    MULTI: what kombu would then raise into the worker's event loop (which exits) is said in
    a warning instead, and the message waits as it does in an outage."""

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        try:
            super().restore_visible(start, num, interval)
        except redis.exceptions.OutOfMemoryError as exc:  # its lock was refused
            logger.warning("broker Redis is full: no unacknowledged message given back (%s)", exc)

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        raw = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        try:
            self._run(_RECORD, repr(time.time()), delivery_tag, raw)
        except redis.exceptions.OutOfMemoryError as exc:
            # taken from the queue, not recorded: the attempt runs (or, refused too, its
            # delivery's message is published again after the grace period, state.py)
            logger.warning("broker Redis is full: message %s not recorded (%s)", delivery_tag, exc)
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        # no longer held, even if Redis refused: not renewed, its record (if left) comes
        # back after the visibility timeout
        try:
            if delivery_tag in _acknowledged:  # done with the attempt's outcome (finish.lua)
                _acknowledged.discard(delivery_tag)
            else:
                self._run(_FORGET, delivery_tag)
        finally:
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            if requeue:
                try:
                    self.restore_by_tag(delivery_tag, leftmost=True)
                except redis.exceptions.OutOfMemoryError:  # still recorded as unacknowledged:
                    logger.warning(  # the scan gives it back after the visibility timeout
                        "broker Redis is full: message %s requeued after the visibility timeout",
                        delivery_tag,
                    )
            else:
                self._run(_FORGET, delivery_tag)
        finally:  # as in ack
            virtual.QoS.ack(self, delivery_tag)

    def renew_held(self, streak: RenewalStreak) -> None:
        """Renew the unacknowledged record of every message this worker holds (running, or
        waiting in its buffer), so that no other worker gives it back to the queue while
        this one lives: the visibility timeout counts from the moment it stops renewing.
        `XX`: a message acknowledged meanwhile (its record removed) stays removed. A failure
        is counted in `streak` (the worker's, across its reconnections)."""
        taken: Any = self._delivered
        acknowledged: Any = self._dirty  # acknowledged, not yet taken out of `taken`
        try:
            held = [tag for tag in list(taken) if tag not in acknowledged]
        except RuntimeError:  # taken or acknowledged while read: the next renewal
            return
        if not held:
            return
        channel: Any = self.channel
        try:
            with channel.conn_or_acquire() as client:
                renewed = dict.fromkeys(held, time.time())
                client.zadd(self.unacked_index_key, renewed, xx=True, gt=True)
        except redis.RedisError as exc:  # an outage: the next renewal, or the timeout
            streak.failed(exc, self.visibility_timeout)
        else:
            streak.succeeded()

    def _run(self, source: str, *args: str) -> None:
        keys = (self.unacked_index_key, self.unacked_key)
        channel: Any = self.channel
        with channel.conn_or_acquire() as client:
            sha = _SHAS.get(source) or _SHAS.setdefault(source, client.script_load(source))
            try:
                roundtrip.call(client.connection_pool, "EVALSHA", sha, 2, *keys, *args)
            except redis.exceptions.NoScriptError:  # a restarted Redis forgot it
                roundtrip.call(client.connection_pool, "EVAL", source, 2, *keys, *args)


_SHAS: dict[str, str] = {}
_acknowledged: set[str] = set()
_consumer_pid = 0  # the process whose channel takes messages (and acknowledges them)


def consumes_here() -> bool:
    """True in the process that acknowledges the messages it takes (a threads or solo
    worker), not in a prefork child (there the parent acknowledges)."""
    return _consumer_pid == os.getpid()


def acknowledged(delivery_tag: str) -> None:
    """The message `delivery_tag` was acknowledged in the step that recorded its attempt's
    outcome: the worker's acknowledgement that follows needs no round trip of its own."""
    if len(_acknowledged) > 100_000:  # never reached: each is taken out by its ack
        _acknowledged.clear()
    _acknowledged.add(delivery_tag)


def unacked_keys(settings: Settings) -> tuple[str, str] | None:
    """kombu's index and record of unacknowledged messages, when they live in the state
    Redis (so that an attempt's outcome can acknowledge its message in the same step)."""
    if publisher.same_redis_queue(settings) is None:
        return None
    options = publisher.app.conf.broker_transport_options or {}
    return (
        str(options.get("unacked_index_key", "unacked_index")),
        str(options.get("unacked_key", "unacked")),
    )


def ack_for(request: Any, settings: Settings) -> Ack | None:
    """The message of the task's `request`, to acknowledge with the attempt's outcome; None
    when that cannot be done in the same step (another broker, or no delivery tag)."""
    keys = unacked_keys(settings)
    delivery_tag = (request.properties or {}).get("delivery_tag")
    return Ack(*keys, str(delivery_tag)) if keys is not None and delivery_tag else None


def after_attempt(ack: Ack | None, acked: bool) -> None:
    """The attempt ended, its message acknowledged with its outcome if `acked`: the channel's
    acknowledgement that follows sends nothing (in a prefork child, the parent's
    `DeliverRequest` tells its channel instead)."""
    if ack is not None and acked and consumes_here():
        acknowledged(ack.delivery_tag)


@functools.cache
def deliver_request() -> type:
    """The deliver task's request class (`DeliverRequest`), built when a worker's tasks.py
    asks: this module is also the transport of every app that publishes through kombu, which
    must not load celery.worker."""
    from celery.worker.request import Request

    class DeliverRequest(Request):
        """The deliver task's request, in the process that took its message. An attempt that
        ends normally acknowledged its message with its outcome (finish.lua, when the broker
        is the state Redis), wherever it ran: a prefork child too, whose parent then
        acknowledges without a round trip of its own (one fewer per delivery in the process
        every child waits on). Celery builds the request class it uses by subclassing this
        one with its own `on_success`; that is the method wrapped here."""

        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            generated = cls.__dict__.get("on_success")
            if generated is None:
                return

            def on_success(self: Any, failed__retval__runtime: Any, **kw: Any) -> Any:
                if not failed__retval__runtime[0] and unacked_keys(current()) is not None:
                    acknowledged(str(self.message.delivery_tag))
                return generated(self, failed__retval__runtime, **kw)

            cls.on_success = on_success  # type: ignore[method-assign]

        def send_event(self, type: str, **fields: Any) -> None:
            if type == "task-succeeded":  # Flower would keep an earlier attempt's Retry(...)
                fields.setdefault("exception", "")
            super().send_event(type, **fields)

    return DeliverRequest


class Channel(_ClosedIsAConnectionError, _OneClientPerPool, kombu_redis.Channel):
    QoS = QoS

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        global _consumer_pid
        _consumer_pid = os.getpid()
        return super().basic_consume(*args, **kwargs)


class SentinelChannel(_ClosedIsAConnectionError, _OneClientPerPool, kombu_redis.SentinelChannel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
