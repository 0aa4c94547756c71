"""A local Redis Cluster of M primaries and no replicas, for `python -m bench.scale --cluster`:
redis-server nodes started with --cluster-enabled (shahihooks/localcluster.py, as the tests'
are), the slots given by hand (`redis-cli --cluster create` refuses fewer than 3 primaries)
and the nodes introduced with CLUSTER MEET.

Primary i takes a contiguous run of the 16 sixteenths of the slots, as even as they divide:
shahihooks puts its shard k in the k-th sixteenth (shahihooks/shards.py), so each primary
holds whole shards, and `shards_of` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bench.world import wait
from shahihooks.localcluster import LocalNodes
from shahihooks.shards import N_SHARDS


def shards_of(masters: int) -> list[list[int]]:
    """The shards each of `masters` primaries holds: contiguous runs, the first ones longer."""
    base, extra = divmod(N_SHARDS, masters)
    runs, start = [], 0
    for i in range(masters):
        size = base + (1 if i < extra else 0)
        runs.append(list(range(start, start + size)))
        start += size
    return runs


def slot_range(shards: list[int]) -> tuple[int, int]:
    """The first and last slot of a run of shards (each a sixteenth of the slots)."""
    span = REDIS_CLUSTER_HASH_SLOTS // N_SHARDS
    return shards[0] * span, (shards[-1] + 1) * span - 1


@dataclass
class Cluster(LocalNodes):
    """M primaries on 127.0.0.1; `close` stops them and removes their folder."""

    FOLDER_PREFIX: ClassVar[str] = "bench-cluster-"
    NODE_TIMEOUT_MS: ClassVar[int] = 5000
    masters: int

    @property
    def ports(self) -> list[int]:
        return list(self.procs)

    @property
    def url(self) -> str:
        """SHAHIHOOKS_REDIS_URL: one node; the client asks it for the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        self.start_nodes(self.masters)
        for i, (port, shards) in enumerate(zip(self.ports, shards_of(self.masters), strict=True)):
            node = self.node(port)
            node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", *slot_range(shards))
        first = self.node(self.ports[0])
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        wait(self.ok, 30, f"a cluster of {self.masters} primaries", every=0.1)

    def ok(self) -> bool:
        """Every node sees every other and every slot served."""
        try:
            infos = [self.node(p).cluster("info") for p in self.ports]
        except redis.RedisError:
            return False
        return all(
            i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == self.masters
            for i in infos
        )
