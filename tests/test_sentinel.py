"""Redis Sentinel: a real primary, a replica and three sentinels on local ports hold the
state and the broker; the primary is killed mid-run; no acknowledged delivery is lost and
the workers go on with the new primary."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.sentinel import Sentinel

from tests.conftest import free_port, wait_until
from tests.faults import World, rows_of, wait_requests
from tests.receiver import Receiver

MASTER = "shtest-primary"


@dataclass
class SentinelWorld(World):
    """A World whose Redis is a primary, a replica and three sentinels."""

    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{self.ports[f's{i}']}" for i in (1, 2, 3)) + "/0"

    @property
    def client(self) -> redis.Redis:
        sentinels = [("127.0.0.1", self.ports[f"s{i}"]) for i in (1, 2, 3)]
        master: Any = Sentinel(sentinels, socket_timeout=2).master_for(  # type: ignore[no-untyped-call]
            MASTER, socket_timeout=5
        )
        return master  # type: ignore[no-any-return]

    def env(self) -> dict[str, str]:
        return {**super().env(), "SHAHIHOOKS_SENTINEL_MASTER": MASTER}

    def start_redis(self) -> None:
        for name in ("primary", "replica", "s1", "s2", "s3"):
            self.ports[name] = free_port()
        folder = Path(self.folder)
        for name in ("primary", "replica"):
            (folder / name).mkdir()
            argv = [
                "redis-server", "--port", str(self.ports[name]), "--bind", "127.0.0.1",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--dir", str(folder / name),
            ]  # fmt: skip
            if name == "replica":
                argv += ["--replicaof", "127.0.0.1", str(self.ports["primary"])]
            self.servers[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        for name in ("s1", "s2", "s3"):
            conf = folder / f"{name}.conf"
            conf.write_text(
                f"port {self.ports[name]}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 (open while it runs)
            self.servers[name] = subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=log
            )
        replica = redis.Redis(port=self.ports["replica"])
        wait_until(lambda: _linked(replica), timeout=30, what="the replica in sync")
        # Every sentinel must know the replica before the primary dies: a sentinel learns
        # replicas from the primary's INFO (every 10 s), and one that never did cannot fail over.
        for name in ("s1", "s2", "s3"):
            sentinel = redis.Redis(port=self.ports[name])
            wait_until(
                lambda s=sentinel: _sees(s, 2) and _knows_replica(s, self.ports["replica"]),
                timeout=30,
                what=f"sentinel {name} seeing the other two and the replica",
            )

    def sentinel_logs(self) -> str:
        folder = Path(self.folder)
        return "\n".join(
            f"--- {name}\n" + (folder / f"{name}.log").read_text(errors="replace")[-3000:]
            for name in ("s1", "s2", "s3")
        )

    def kill_primary(self) -> None:
        self.servers["primary"].send_signal(signal.SIGKILL)
        self.servers["primary"].wait()

    def stop_redis(self) -> None:
        for proc in self.servers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _linked(replica: redis.Redis) -> bool:
    try:
        info: Any = replica.info("replication")
    except redis.ConnectionError:
        return False
    return bool(info.get("master_link_status") == "up")


def _knows_replica(sentinel: redis.Redis, port: int) -> bool:
    try:
        found: Any = sentinel.execute_command("SENTINEL", "REPLICAS", MASTER)
    except redis.RedisError:
        return False
    for entry in found:  # a dict per replica, or a flat list of names and values
        pairs = (
            zip(entry[::2], entry[1::2], strict=True) if isinstance(entry, list) else entry.items()
        )
        fields = {_text(k): _text(v) for k, v in pairs}
        if fields.get("port") == str(port):
            return not {"disconnected", "s_down"} & set(fields.get("flags", "").split(","))
    return False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sees(sentinel: redis.Redis, others: int) -> bool:
    try:
        found: Any = sentinel.execute_command("SENTINEL", "SENTINELS", MASTER)
    except redis.RedisError:
        return False
    return len(found) >= others


@pytest.fixture
def world(receiver: Receiver, ca: tuple[object, str]) -> Iterator[SentinelWorld]:
    w = SentinelWorld(receiver, ca[1], folder=tempfile.mkdtemp(prefix="shahihooks-sentinel-"))
    w.start_redis()
    try:
        yield w
    finally:
        w.close()


def test_killing_the_primary_loses_no_acknowledged_delivery_and_workers_go_on(
    world: SentinelWorld, receiver: Receiver
) -> None:
    path = f"/sentinel-{uuid.uuid4().hex[:6]}"
    worker = world.worker()
    emitter = world.emitter(300, path, pause_s=0.03)
    wait_requests(receiver, path, 50, timeout=30)
    old = world.ports["primary"]
    world.kill_primary()
    sentinel = redis.Redis(port=world.ports["s1"], decode_responses=True)
    try:
        wait_until(
            lambda: (
                sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1]
                != str(old)
            ),
            timeout=90,  # a loaded machine can put sentinels in TILT mode (30 s) first
            what="the failover",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; what the sentinels logged:\n{world.sentinel_logs()}") from exc
    failed_over_at = time.time()
    rows = rows_of(emitter)
    acknowledged = [r["ok"] for r in rows if "ok" in r]
    refused = [r for r in rows if "error" in r]
    assert all(r["shahihooks"] for r in refused), refused[:3]
    ledger = world.wait_ledger(acknowledged, path, timeout=150)
    print(f"\nSentinel failover: {len(refused)} emits refused during it; {ledger}")
    assert worker.poll() is None, "the worker goes on with the new primary"
    assert ledger.missing == []
    assert ledger.received_distinct == ledger.delivered
    after = [r for r in receiver.requests_to(path) if r.at > failed_over_at]
    assert len(after) > 100, "the same worker delivered on after the failover"
