"""Redis connections: one client per process and URL; what counts as an outage."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import kombu.exceptions
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from shahihooks.errors import ConfigurationError
from shahihooks.safety import redact_url
from shahihooks.settings import Settings

# Redis (state or broker) or the broker unreachable, or a Redis replica promoted mid-call:
# an outage, after which the work is tried again; any other exception is a bug.
OUTAGES = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    kombu.exceptions.OperationalError,
)

_lock = threading.Lock()
_clients: dict[tuple[int, str, str], redis.Redis] = {}


# No command is re-sent by the client on its own: a script that timed out may have run, and
# running it again is a decision for the caller (emit makes it safe; others requeue).
SOCKET_TIMEOUT_S = 4.0


_OPTIONS: dict[str, Any] = {
    "socket_timeout": SOCKET_TIMEOUT_S,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
    "max_connections": 64,
    "retry": Retry(NoBackoff(), 0),
}


def redis_client(url: str, sentinel_master: str = "mymaster") -> redis.Redis:
    """A shared client for `url` (a new pool after a fork), with bounded timeouts.

    `sentinel://host:26379;sentinel://host2:26379/0` (kombu's form) asks those Sentinels
    for the primary of `sentinel_master`, and again after a failover.
    """
    key = (os.getpid(), url, sentinel_master if is_sentinel(url) else "")
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = (
                        _sentinel_client(url, sentinel_master)
                        if is_sentinel(url)
                        else redis.Redis.from_url(url, **_OPTIONS)
                    )
                except ValueError as exc:
                    raise ConfigurationError(
                        f"SHAHIHOOKS_REDIS_URL {redact_url(url)!r}: {exc}"
                    ) from None
                _clients[key] = client
    return client


def state_redis(settings: Settings) -> redis.Redis:
    """The client of the state Redis (SHAHIHOOKS_REDIS_URL)."""
    return redis_client(settings.redis_url, settings.sentinel_master)


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def _sentinel_client(url: str, master: str) -> redis.Redis:
    parts = [urlsplit(u) for u in url.split(";") if u.strip()]
    if not parts or any(p.scheme != "sentinel" or not p.hostname for p in parts):
        raise ValueError("expected sentinel://host:port;sentinel://host2:port/db")
    hosts = [(p.hostname or "", p.port or 26379) for p in parts]
    paths = [p.path.strip("/") for p in parts if p.path.strip("/")]
    password = next((p.password for p in parts if p.password), None)
    timeouts = {"socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": 5}
    sentinels = Sentinel(hosts, sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    options = {k: v for k, v in _OPTIONS.items() if k != "max_connections"}
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        master, db=int(paths[-1]) if paths else 0, password=password, **options
    )
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
