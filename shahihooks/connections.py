"""Redis connections: one client per process and URL; what counts as an outage."""

from __future__ import annotations

import os
import threading

import kombu.exceptions
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shahihooks.errors import ConfigurationError

# Redis (state or broker) or the broker unreachable, or a Redis replica promoted mid-call:
# an outage, after which the work is tried again; any other exception is a bug.
OUTAGES = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    kombu.exceptions.OperationalError,
)

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


# No command is re-sent by the client on its own: a script that timed out may have run, and
# running it again is a decision for the caller (emit makes it safe; others requeue).
SOCKET_TIMEOUT_S = 4.0


def redis_client(url: str) -> redis.Redis:
    """A shared client for `url` (a new pool after a fork), with bounded timeouts."""
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = redis.Redis.from_url(
                        url,
                        socket_timeout=SOCKET_TIMEOUT_S,
                        socket_connect_timeout=5,
                        health_check_interval=30,
                        max_connections=64,
                        retry=Retry(NoBackoff(), 0),
                    )
                except ValueError as exc:
                    raise ConfigurationError(f"SHAHIHOOKS_REDIS_URL {url!r}: {exc}") from None
                _clients[key] = client
    return client
