"""Redis connections: one client per process and URL; what counts as an outage."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shahihooks.errors import ConfigurationError
from shahihooks.safety import redact_url

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


@dataclass(frozen=True)
class ServerFacts:
    """What shahihooks needs to know of a Redis server, read once (INFO, CONFIG GET)."""

    cluster: bool
    appendonly: bool | None  # None: the server does not say (CONFIG disabled by ACL, say)
    appendfsync: str = ""


def server_facts(client: redis.Redis) -> ServerFacts:
    info: Any = client.info("cluster")
    cluster = bool(int(info.get("cluster_enabled", 0)))
    try:
        config: Any = client.config_get("append*")
    except redis.ResponseError:
        return ServerFacts(cluster, None)
    return ServerFacts(cluster, config.get("appendonly") == "yes", config.get("appendfsync", ""))


def refuse_cluster(facts: ServerFacts, what: str, url: str) -> None:
    if facts.cluster:
        raise ConfigurationError(
            f"{what} {redact_url(url)} is a Redis Cluster, which shahihooks does not support: "
            "each of its atomic steps touches keys in several hash slots (CROSSSLOT). Use one "
            "Redis for the state (with Sentinel for failover: sentinel:// URLs) and scale "
            "deliveries out with more workers, or RabbitMQ as the broker"
        )


def persistence_warning(facts: ServerFacts, what: str, url: str) -> str | None:
    """Why a restart of this Redis could lose deliveries, or None."""
    if facts.appendonly is None:
        return f"{what} {redact_url(url)} does not say whether it persists (CONFIG GET refused)"
    if facts.appendonly:
        return None
    return (
        f"{what} {redact_url(url)} runs without append-only persistence (appendonly no): a "
        "restart loses queued and waiting deliveries and delivered markers. Set "
        "`appendonly yes` (appendfsync everysec loses at most the last second)"
    )
