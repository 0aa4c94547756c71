"""Redis connections: one client per process and URL; what counts as an outage."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import kombu.exceptions
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from shahihooks.clusterurl import node_urls, startup_nodes
from shahihooks.errors import ConfigurationError
from shahihooks.safety import redact_url
from shahihooks.settings import Settings

# Redis (state or broker) or the broker unreachable, a Redis replica promoted mid-call, or a
# Redis at its maxmemory refusing writes (noeviction): an outage, after which the work is
# tried again; any other exception is a bug.
OUTAGES = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    kombu.exceptions.OperationalError,
    # a Redis Cluster moving a shard's slot (a failover): the call did not run there
    redis.exceptions.AskError,  # MovedError's parent: a slot migrating
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
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


_clusters: dict[tuple[int, str], RedisCluster] = {}


def cluster_client(url: str) -> RedisCluster:
    """A shared client of the Redis Cluster that `url` names a node (or several: clusterurl.py)
    of (SHAHIHOOKS_REDIS_CLUSTER): it knows which primary serves each slot (shards.py sends
    the scripts there itself)."""
    key = (os.getpid(), url)
    with _lock:
        client = _clusters.get(key)
        if client is None:
            try:
                found = startup_nodes(url)  # checked; the first URL's options reach every
                # node through redis-py's own reading of it (rediss://: its SSL connections)
                others = [ClusterNode(h, p) for h, p in found.nodes[1:]]  # type: ignore[no-untyped-call]
                options = {k: v for k, v in _OPTIONS.items() if k != "retry"}
                client = RedisCluster(url=node_urls(url)[0], startup_nodes=others, **options)
            except ValueError as exc:
                raise ConfigurationError(f"SHAHIHOOKS_REDIS_URL: {exc}") from None
            except redis.exceptions.RedisClusterException as exc:
                raise _cluster_refusal(url, exc) from exc
            _clusters[key] = client
    return client


def cluster_primaries(url: str) -> list[redis.Redis]:
    """A client of every primary of the Redis Cluster that `url` names a node of."""
    cluster = cluster_client(url)
    nodes: Any = cluster.get_primaries()  # type: ignore[no-untyped-call]
    # a primary first met in a MOVED has no client yet (shards.ClusterRoute.client)
    return [cluster.get_redis_connection(node) for node in nodes]


def node_address(client: redis.Redis) -> str:
    """host:port of a client's server (a Cluster primary, in messages)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


NOT_A_NODE = "not a node of a Redis Cluster: cluster mode is not enabled on it"


def _cluster_refusal(url: str, exc: Exception) -> Exception:
    """Why a Cluster client could not be made: a listed Redis is not a Cluster node (the
    URL), or no node answers (an outage). redis-py's refusal names only the last node it
    asked (in a random order), so each is asked again and named with what went wrong."""
    if "cannot be connected" not in str(exc):
        return ConfigurationError(f"SHAHIHOOKS_REDIS_URL {redact_url(url)!r}: {exc}")
    whys = _ask_each(url)
    each = ", ".join(f"{redact_url(item)} ({why})" for item, why in whys)
    if any(why == NOT_A_NODE for _, why in whys):
        return ConfigurationError(
            f"SHAHIHOOKS_REDIS_CLUSTER is set, but SHAHIHOOKS_REDIS_URL {redact_url(url)} "
            "names a Redis that is not a node of a Redis Cluster"
            + (f": {each}" if len(whys) > 1 else "")
        )
    return redis.ConnectionError(f"no node of the Redis Cluster answers: {each}")


def _ask_each(url: str) -> list[tuple[str, str]]:
    """Every node `url` lists and what went wrong asking it, asked at once (nodes that do
    not answer cost one connect timeout, not one each)."""
    found = startup_nodes(url)
    options = dict(found.options)
    with ThreadPoolExecutor(len(found.nodes)) as pool:
        whys = list(pool.map(lambda node: _ask_node(node, options), found.nodes))
    return list(zip(node_urls(url), whys, strict=True))


def _ask_node(node: tuple[str, int], options: dict[str, Any]) -> str:
    """What went wrong asking a node for the Cluster's slots, as redis-py asks a startup node."""
    once = {k: _OPTIONS[k] for k in ("socket_timeout", "socket_connect_timeout", "retry")}
    pool = redis.ConnectionPool(host=node[0], port=node[1], **{**once, **options})  # the URL wins
    try:
        redis.Redis(connection_pool=pool).execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
    except redis.ResponseError:
        return NOT_A_NODE
    except (redis.RedisError, OSError) as exc:
        return str(exc).strip().rstrip(".") or type(exc).__name__
    finally:
        pool.disconnect()
    return "answered only when asked again"


def state_redis(settings: Settings) -> redis.Redis:
    """The client of the state Redis (SHAHIHOOKS_REDIS_URL). In a Redis Cluster, of its first
    listed node, connected only once used: the state there is read through shards.py (the
    endpoint store too), so this client only stands in where one is passed."""
    url = settings.redis_url
    if settings.redis_cluster:
        url = node_urls(url)[0]
    return redis_client(url, settings.sentinel_master)


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
    """What shahihooks needs to know of a Redis server, read once (INFO, CONFIG GET, TIME)."""

    cluster: bool
    appendonly: bool | None  # None: the server does not say (CONFIG disabled by ACL, say)
    appendfsync: str = ""
    maxmemory: int = 0  # bytes; 0: no limit
    maxmemory_policy: str = ""  # "": the server does not say
    used_memory: int = 0
    run_id: str = ""  # a new one each time the server starts
    clock_ahead_s: float = 0.0  # this machine's clock minus the server's


def server_facts(client: redis.Redis) -> ServerFacts:
    before = time.time()
    seconds, micros = client.time()
    ahead = (before + time.time()) / 2 - (int(seconds) + int(micros) / 1e6)
    info: Any = client.info("cluster")
    memory: Any = client.info("memory")
    server: Any = client.info("server")
    facts = ServerFacts(
        cluster=bool(int(info.get("cluster_enabled", 0))),
        appendonly=None,
        maxmemory=int(memory.get("maxmemory", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "")),
        used_memory=int(memory.get("used_memory", 0)),
        run_id=str(server.get("run_id", "")),
        clock_ahead_s=ahead,
    )
    try:
        config: Any = client.config_get("append*")
    except redis.ResponseError:
        return facts
    appendonly = config.get("appendonly") == "yes"
    return replace(facts, appendonly=appendonly, appendfsync=config.get("appendfsync", ""))


def refuse_cluster(facts: ServerFacts, what: str, url: str, allowed: bool = False) -> None:
    """A Cluster is refused as the broker, and as the state without SHAHIHOOKS_REDIS_CLUSTER
    (`allowed`): its keys are then spread over shards (shards.py)."""
    if facts.cluster and not allowed:
        raise ConfigurationError(
            f"{what} {redact_url(url)} is a Redis Cluster, which shahihooks does not support: "
            "each of its atomic steps touches keys in several hash slots (CROSSSLOT). Use one "
            "Redis for the state (with Sentinel for failover: sentinel:// URLs), or set "
            "SHAHIHOOKS_REDIS_CLUSTER=1 for a Cluster as the state (with RabbitMQ as the "
            "broker)"
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


# keys that shahihooks (and a receiving app) give a TTL: what a volatile-* policy may delete
EVICTABLE = (
    "the delivered/dead markers (a late or replayed message is sent again)",
    "the keys of emit(key=...) (the same key enqueues again)",
    "the throttles (a throttled event is sent again)",
    "the rate-limit windows (a URL gets more than its limit)",
    "the hourly stats and the lost-state report",
    "a receiving app's handled-delivery records (a duplicate is handled twice)",
)


def refuse_eviction(facts: ServerFacts, what: str, url: str) -> None:
    """An allkeys-* policy deletes any key at maxmemory: queued deliveries vanish unseen."""
    policy = facts.maxmemory_policy
    if policy.startswith("allkeys-"):
        raise ConfigurationError(
            f"{what} {redact_url(url)} has maxmemory-policy {policy}: at its memory limit it "
            "deletes any key, queued and waiting deliveries among them, and nothing would say "
            'so. Set `maxmemory-policy noeviction` (an emit then fails with "Redis is full" '
            "and nothing is lost)"
        )


def eviction_warning(facts: ServerFacts, what: str, url: str) -> str | None:
    """What a volatile-* policy may delete at maxmemory, or None."""
    policy = facts.maxmemory_policy
    if not policy.startswith("volatile-"):
        return None
    return (
        f"{what} {redact_url(url)} has maxmemory-policy {policy}: at its memory limit it "
        f"deletes keys that have a TTL, which are {'; '.join(EVICTABLE)}. Set "
        "`maxmemory-policy noeviction`"
    )


CLOCK_SKEW_WARN_S = 30.0


def clock_warning(facts: ServerFacts, what: str, url: str) -> str | None:
    """This machine's clock off from the Redis's by more than CLOCK_SKEW_WARN_S, or None.

    The state runs on Redis's clock, but a delivery's webhook-timestamp is this machine's:
    a receiver that checks its age (±5 minutes is usual) refuses one from a skewed clock.
    """
    ahead = facts.clock_ahead_s
    if abs(ahead) <= CLOCK_SKEW_WARN_S:
        return None
    side = "ahead of" if ahead > 0 else "behind"
    return (
        f"this machine's clock is {abs(ahead):.0f} s {side} the clock of {what} "
        f"{redact_url(url)}: deliveries signed here carry a webhook-timestamp that far off, "
        "and receivers refuse one off by more than their tolerance (often 5 minutes). Sync "
        "the clocks (NTP: chrony or systemd-timesyncd)"
    )


def memory_text(facts: ServerFacts) -> str:
    """Memory in use and its limit, e.g. "412.0 MB of 512.0 MB (80%)"."""
    used = f"{facts.used_memory / 1e6:.1f} MB"
    if not facts.maxmemory:
        return f"{used} (no maxmemory limit)"
    return f"{used} of {facts.maxmemory / 1e6:.1f} MB ({facts.used_memory / facts.maxmemory:.0%})"


def full_message(url: str, what: str = "") -> str:
    """One line for a write refused by a full Redis; `what` says what was not done."""
    return (
        f"Redis is full: {redact_url(url)} reached its maxmemory and refuses writes"
        f"{': ' + what if what else ''}; raise its maxmemory (or free memory)"
    )


def server_warnings(facts: ServerFacts, what: str, url: str) -> list[str]:
    """What could lose or spoil deliveries on this server, short of a refusal."""
    found = (
        persistence_warning(facts, what, url),
        eviction_warning(facts, what, url),
        clock_warning(facts, what, url),
    )
    return [w for w in found if w]
