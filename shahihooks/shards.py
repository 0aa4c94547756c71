"""The state's shards: one on one Redis, N_SHARDS in a Redis Cluster (SHAHIHOOKS_REDIS_CLUSTER).

Every key of a script's call is built from the prefix it is given (contract.Common), so a
shard is a prefix: `{prefix}:{{tag}}`, a hash tag that puts all of a shard's keys in one
slot, and no call ever touches two slots. The tags are chosen so that the shards' slots
spread evenly over the 16,384 (one in each 1,024), hence over the primaries. An endpoint
lives in one shard (by its URL tag, which every delivery id ends with), with its backlog,
rate windows, health and deliveries; an emit stores each shard's endpoints in a step of
their own (steps.py). Readers (dead letters, stats, the log, health) go over every shard.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from shahihooks import steps
from shahihooks.connections import OUTAGES, cluster_client
from shahihooks.settings import Settings
from shahihooks.state import State, state_for
from shahihooks.statetypes import Emitted, StoredEvent, Target

N_SHARDS = 16
REROUTE_MIN_S = 0.5  # after an outage, the slots are looked up again at most this often


@functools.cache
def shard_tags() -> tuple[str, ...]:
    """Shard k's hash tag: the first `s{k}-{i}` whose slot is in the k-th sixteenth."""
    span = REDIS_CLUSTER_HASH_SLOTS // N_SHARDS
    tags = []
    for k in range(N_SHARDS):
        i = 0
        while key_slot(f"s{k}-{i}".encode()) // span != k:
            i += 1
        tags.append(f"s{k}-{i}")
    return tuple(tags)


def shard_prefix(prefix: str, shard: int) -> str:
    return f"{prefix}:{{{shard_tags()[shard]}}}"


def shard_of_tag(url_tag: str) -> int:
    """The shard of an endpoint, by its URL tag (keys.url_tag)."""
    return int(url_tag[:8], 16) % N_SHARDS


def shard_of_delivery(delivery_id: str) -> int:
    """A delivery's shard: its endpoint's (a delivery id is `{msg_id}-{url_tag}`); the first
    for an id that is not one (an unreadable message's, a mistyped one: found nowhere else)."""
    tail = delivery_id.rsplit("-", 1)[-1]
    if len(tail) < 8 or any(c not in "0123456789abcdef" for c in tail[:8]):
        return 0
    return shard_of_tag(tail)


class ClusterRoute:
    """One shard of a Redis Cluster: the primary serving its slot, looked up again after an
    outage or a moved slot, met by a script call or by a plain command (a failover promotes a
    replica, which has the functions already: they replicate)."""

    def __init__(self, cluster: RedisCluster, prefix: str) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self._client: _Rerouting | None = None

    def client(self) -> redis.Redis:
        node: Any = self.cluster.get_node_from_key(self.prefix)  # type: ignore[no-untyped-call]
        pool = node.redis_connection.connection_pool
        client = self._client
        if client is None or client.connection_pool is not pool:  # built once per primary
            client = self._client = _Rerouting(self, pool)
        return client

    def lost(self) -> None:
        _reroute(self.cluster)


class _Rerouting(redis.Redis):
    """A shard primary's client whose commands, on an outage or a moved slot, have the
    cluster asked again which primary serves the shard (then raise as they would): the
    next command goes to the promoted replica, in an app that keeps running too."""

    def __init__(self, route: ClusterRoute, pool: redis.ConnectionPool) -> None:
        super().__init__(connection_pool=pool)
        self.route = route

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except OUTAGES:
            self.route.lost()
            raise


_reroute_lock = threading.Lock()
_rerouted: dict[int, float] = {}


def _reroute(cluster: RedisCluster) -> None:
    """Ask the cluster again which primary serves each slot (at most every REROUTE_MIN_S)."""
    with _reroute_lock:
        if time.monotonic() - _rerouted.get(id(cluster), 0.0) < REROUTE_MIN_S:
            return
        _rerouted[id(cluster)] = time.monotonic()
    # none answers (or not every slot is served yet): the next outage asks again
    with contextlib.suppress(redis.RedisError, redis.exceptions.RedisClusterException, OSError):
        cluster.nodes_manager.initialize(disconnect_startup_nodes_pools=False)


@functools.lru_cache(maxsize=64)
def _shards(pid: int, settings: Settings) -> tuple[State, ...]:
    if not settings.redis_cluster:
        return (state_for(settings),)
    cluster = cluster_client(settings.redis_url)
    return tuple(
        State(settings, route=ClusterRoute(cluster, shard_prefix(settings.prefix, k)))
        for k in range(N_SHARDS)
    )


def shards(settings: Settings) -> tuple[State, ...]:
    """Every shard's State (one, the State of state_for, without a Cluster)."""
    return _shards(os.getpid(), settings)


def of_tag(settings: Settings, url_tag: str) -> State:
    found = shards(settings)
    return found[shard_of_tag(url_tag)] if len(found) > 1 else found[0]


def of_delivery(settings: Settings, delivery_id: str) -> State:
    found = shards(settings)
    return found[shard_of_delivery(delivery_id)] if len(found) > 1 else found[0]


def by_shard(settings: Settings, delivery_ids: Sequence[str]) -> list[tuple[State, list[str]]]:
    """`delivery_ids` grouped by their shard's State, in the order first met."""
    found: dict[int, tuple[State, list[str]]] = {}
    for i in delivery_ids:
        state = of_delivery(settings, i)
        found.setdefault(id(state), (state, []))[1].append(i)
    return list(found.values())


def emit(
    settings: Settings, new: StoredEvent, targets: Sequence[Target], messages: Sequence[str]
) -> Emitted:
    """Store an emit: each shard's targets by its State, in steps numbered by shard then by
    the emit's order; what was placed comes back in the order of `targets`."""
    found = shards(settings)
    if len(found) == 1:
        return found[0].emit(new, targets, messages)
    order = sorted(range(len(targets)), key=lambda i: shard_of_tag(targets[i].tag))
    groups: list[steps.Group] = []
    for k in sorted({shard_of_tag(t.tag) for t in targets}):
        mine = [i for i in order if shard_of_tag(targets[i].tag) == k]
        picked = [messages[i] for i in mine] if messages else []
        groups.append(steps.Group(found[k], [targets[i] for i in mine], picked))
    done = steps.run(new, groups)
    if done.duplicate_of is not None or done.throttled:
        return done
    placed = [done.placed[0]] * len(targets)
    for at, i in enumerate(order):
        placed[i] = done.placed[at]
    return Emitted(placed=tuple(placed))
