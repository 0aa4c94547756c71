"""kombu's Redis transport, with one fix so that a worker survives a Redis restart.

Celery 5.7's consumer, on losing the broker, collects the connection (its `client` becomes
None) and then closes it; closing a Redis channel requeues its unacknowledged messages,
which needs connection parameters from that `client`: an AttributeError that Celery treats
as unrecoverable, and the worker exits. Here the missing client is a connection error
instead, which Celery ignores while it reconnects; the messages stay recorded as
unacknowledged in Redis and come back after the visibility timeout.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class _ClosedIsAConnectionError:
    connection: Any

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Channel(_ClosedIsAConnectionError, kombu_redis.Channel):
    pass


class SentinelChannel(_ClosedIsAConnectionError, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
