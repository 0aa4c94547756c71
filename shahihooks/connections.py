"""Redis connections: one client per process and URL; what counts as an outage."""

from __future__ import annotations

import os
import threading

import kombu.exceptions
import redis

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
                        socket_timeout=10,
                        socket_connect_timeout=5,
                        health_check_interval=30,
                        max_connections=64,
                    )
                except ValueError as exc:
                    raise ConfigurationError(f"SHAHIHOOKS_REDIS_URL {url!r}: {exc}") from None
                _clients[key] = client
    return client
