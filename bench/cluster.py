"""A local Redis Cluster of M primaries and no replicas, for `python -m bench.scale --cluster`:
redis-server nodes started with --cluster-enabled, the slots given by hand (`redis-cli
--cluster create` refuses fewer than 3 primaries) and the nodes introduced with CLUSTER MEET.

Primary i takes a contiguous run of the 16 sixteenths of the slots, as even as they divide:
shahihooks puts its shard k in the k-th sixteenth (shahihooks/shards.py), so each primary
holds whole shards, and `shards_of` says which.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bench.world import free_port, wait
from shahihooks.shards import N_SHARDS

BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000


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


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus (port + 10000, at most 65535) is free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET <= 65_535 and port not in taken and not _listening(port + BUS_OFFSET):
            return port


@dataclass
class Cluster:
    """M primaries on 127.0.0.1; `close` stops them and removes their folder."""

    masters: int
    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bench-cluster-"))
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        return list(self.procs)

    @property
    def url(self) -> str:
        """SHAHIHOOKS_REDIS_URL: one node; the client asks it for the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def start(self) -> None:
        taken: set[int] = set()
        for _ in range(self.masters):
            taken.add(port := cluster_port(taken))
            self.procs[port] = subprocess.Popen(self._argv(port), stdout=subprocess.DEVNULL)
        for port in self.ports:
            wait(lambda p=port: _listening(p), 10, f"redis-server on {port}")  # type: ignore[misc]
        for i, (port, shards) in enumerate(zip(self.ports, shards_of(self.masters), strict=True)):
            node = self.node(port)
            node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", *slot_range(shards))
        first = self.node(self.ports[0])
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        wait(self.ok, 30, f"a cluster of {self.masters} primaries", every=0.1)

    def _argv(self, port: int) -> list[str]:
        return [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", self.folder),
            *("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
            *("--cluster-config-file", f"{self.folder}/nodes-{port}.conf"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]

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

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
