"""The state's shards: one on one Redis, N_SHARDS in a Redis Cluster (SHAHIHOOKS_REDIS_CLUSTER).

Every key of a script's call is built from the prefix it is given (contract.Common), so a
shard is a prefix: `{prefix}:{{tag}}`, a hash tag that puts all of a shard's keys in one
slot, and no call ever touches two slots. The tags are chosen so that the shards' slots
spread evenly over the 16,384 (one in each 1,024), hence over the primaries. An endpoint
lives in one shard (by its URL tag, which every delivery id ends with), with its backlog,
rate windows, health and deliveries; an emit stores each shard's endpoints in a step of
their own (steps.py). An emit with a key or a throttle runs its first step, which checks and
sets the key's marker and the throttle, on a lead shard fixed by the throttle's key (or the
key's marker): the same key, or value of a throttled field, meets its marker there whatever
the endpoints are then (a step of no delivery, when none of them lives there). Readers (dead
letters, stats, the log, health) go over every shard.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from shahihooks import steps
from shahihooks.connections import OUTAGES, cluster_client
from shahihooks.keys import Keys
from shahihooks.settings import Settings
from shahihooks.state import State, state_for
from shahihooks.statetypes import Emitted, StoredEvent, Target

N_SHARDS = 16
Item = TypeVar("Item", bound=Hashable)
Read = TypeVar("Read")
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


def shard_of_name(name: str) -> int:
    """The shard of a name that is no endpoint's (a key's marker, a throttle), by its SHA-256."""
    return shard_of_tag(hashlib.sha256(name.encode("utf-8")).hexdigest())


def lead_shard(prefix: str, new: StoredEvent) -> int | None:
    """The shard of an emit's first step, where its throttle and its key's marker live: by
    the throttle (an emit of every key meets it: the Django outbox keys each row), else by
    the key; None when it has neither (its first step is then its lowest shard's)."""
    keys = Keys(prefix)
    if new.throttle is not None:
        return shard_of_name(keys.throttle(new.event, new.throttle[0]))
    if new.key is not None:
        return shard_of_name(keys.emitted(new.key))
    return None


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
        # a primary first met in a MOVED (a node added, then given slots) has no client yet
        pool = self.cluster.get_redis_connection(node).connection_pool
        client = self._client
        if client is None or client.connection_pool is not pool:  # built once per primary
            client = self._client = _Rerouting(self, pool)
        return client

    def lost(self, cause: BaseException | None = None) -> None:
        if isinstance(cause, redis.exceptions.MovedError):
            _follow(self.cluster, cause)
        else:
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
        except OUTAGES as exc:
            self.route.lost(exc)
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


def _follow(cluster: RedisCluster, moved: redis.exceptions.MovedError) -> None:
    """The slot's new primary, as MOVED names it, put in the cluster's slot table (what
    RedisCluster itself does on MOVED): a slot moved by a reshard is followed at once, where
    _reroute waits REROUTE_MIN_S, and could ask a replica that has not heard of the move yet
    (an emit's three tries then all met MOVED)."""
    nodes: Any = cluster.nodes_manager
    if hasattr(nodes, "move_slot"):
        nodes.move_slot(moved)
    else:  # redis-py 5.2: kept until a slot lookup applies it, which client()'s does not
        nodes.update_moved_exception(moved)
        nodes.get_node_from_slot(moved.slot_id)  # so applied here


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


def of_shard(settings: Settings, shard: int) -> State:
    """Shard `shard`'s State (the only one, without a Cluster)."""
    found = shards(settings)
    return found[shard] if len(found) > 1 else found[0]


def of_tag(settings: Settings, url_tag: str) -> State:
    return of_shard(settings, shard_of_tag(url_tag))


def of_delivery(settings: Settings, delivery_id: str) -> State:
    return of_shard(settings, shard_of_delivery(delivery_id))


def group(
    settings: Settings, items: Sequence[Item], shard_of: Callable[[Item], int]
) -> list[tuple[State, list[Item]]]:
    """`items` grouped by their shard's State, in the order first met."""
    found: dict[int, tuple[State, list[Item]]] = {}
    for item in items:
        state = of_shard(settings, shard_of(item))
        found.setdefault(id(state), (state, []))[1].append(item)
    return list(found.values())


def by_shard(settings: Settings, delivery_ids: Sequence[str]) -> list[tuple[State, list[str]]]:
    return group(settings, delivery_ids, shard_of_delivery)


def read_each(
    settings: Settings,
    items: Sequence[Item],
    shard_of: Callable[[Item], int],
    read: Callable[[State, list[Item]], Sequence[Read]],
) -> list[Read]:
    """`read(state, mine)` for each shard's items (a pipeline per shard, not a round trip
    per item), one result per item, given back in the order of `items`."""
    found: dict[Item, Read] = {}
    for state, mine in group(settings, items, shard_of):
        found.update(zip(mine, read(state, mine), strict=True))
    return [found[item] for item in items]


def emit(
    settings: Settings, new: StoredEvent, targets: Sequence[Target], messages: Sequence[str]
) -> Emitted:
    """Store an emit: each shard's targets by its State, in steps numbered from the lead
    shard's (lead_shard), then by shard and by the emit's order; what was placed comes back
    in the order of `targets`."""
    found = shards(settings)
    if len(found) == 1:
        return found[0].emit(new, targets, messages)
    lead = lead_shard(settings.prefix, new)
    present = sorted({shard_of_tag(t.tag) for t in targets} - {lead})
    order: list[int] = []
    groups: list[steps.Group] = []
    for k in ([lead] if lead is not None else []) + present:
        mine = [i for i in range(len(targets)) if shard_of_tag(targets[i].tag) == k]
        picked = [messages[i] for i in mine] if messages else []
        groups.append(steps.Group(found[k], [targets[i] for i in mine], picked))
        order += mine
    done = steps.run(new, groups)
    if done.duplicate_of is not None or done.throttled:
        return done
    placed = [done.placed[0]] * len(targets)
    for at, i in enumerate(order):
        placed[i] = done.placed[at]
    return Emitted(placed=tuple(placed))
