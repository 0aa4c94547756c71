"""A local Redis Cluster (3 primaries, 3 replicas on 127.0.0.1, its nodes started as the
bench's are: shahihooks/localcluster.py) with RabbitMQ as the broker, for the cluster tests:
the cluster and world fixtures (import both into a test module: the cluster is then one per
module), and what those tests emit and read with."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from kombu import Connection
from redis.crc import key_slot

from shahihooks import shards
from shahihooks.connections import OUTAGES
from shahihooks.keys import url_tag
from shahihooks.localcluster import LocalNodes
from shahihooks.settings import Settings
from tests.conftest import SECRET, ScriptKeys, wait_until
from tests.faults import World
from tests.receiver import Receiver

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
ROOT = Path(__file__).resolve().parent.parent
EMITTER = r"""
import json, sys
import shahihooks
key = sys.argv[2] if len(sys.argv) > 2 else None
for i in range(int(sys.argv[1])):
    found = shahihooks.emit("ticket.created", {"ticket_id": i, "n": i}, key=key)
    print(json.dumps([[d.id, d.status] for d in found]), flush=True)
"""


@dataclass
class Cluster(LocalNodes):
    """3 primaries and 3 replicas (redis-cli --cluster create); `kill` one node."""

    def start(self, nodes: int = 6) -> None:
        ports = self.start_nodes(nodes)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self.ok, timeout=30, what="cluster_state:ok")

    def ok(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            return all(
                self.node(p).cluster("info")["cluster_state"] == "ok" and len(self.masters(p)) == 3
                for p in self.procs
            )
        return False

    def masters(self, via: int | None = None) -> list[int]:
        """The ports of the primaries, as node `via` sees them."""
        found = self.node(via or next(iter(self.procs))).cluster("nodes")
        return sorted(
            int(address.split("@")[0].rsplit(":", 1)[1])
            for address, node in found.items()
            if "master" in node["flags"] and "fail" not in node["flags"]
        )

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self, sig: int = signal.SIGKILL) -> None:
        super().close(sig)  # killed: a test's cluster has nothing to shut down cleanly


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture() -> Iterator[Cluster]:
    try:
        with Connection(AMQP, connect_timeout=5) as conn:
            conn.connect()
    except Exception as exc:
        pytest.fail(f"RabbitMQ does not answer at {AMQP} ({exc}): `make rabbitmq` starts it")
    found = Cluster()
    try:
        found.start()
        yield found
    finally:
        found.close()


@pytest.fixture(name="world")
def world_fixture(cluster: Cluster, receiver: Receiver, ca: tuple[object, str]) -> Iterator[World]:
    w = World(receiver, ca[1])
    run = uuid.uuid4().hex[:8]
    node = next(iter(cluster.procs))
    w.settings.update(
        {
            "SHAHIHOOKS_REDIS_URL": f"redis://127.0.0.1:{node}/0",
            "SHAHIHOOKS_REDIS_CLUSTER": "1",
            "SHAHIHOOKS_BROKER_URL": AMQP,
            "SHAHIHOOKS_QUEUE": f"shtest-cluster-{run}",
            "SHAHIHOOKS_PREFIX": f"cl{run}",
            "SHAHIHOOKS_CIRCUIT_THRESHOLD": "1000",
        }
    )
    try:
        yield w
    finally:
        w.close()
        with Connection(AMQP) as conn:
            conn.default_channel.queue_delete(w.settings["SHAHIHOOKS_QUEUE"])


def worker(world: World, concurrency: int) -> subprocess.Popen[bytes]:
    """A worker of its own name: another's on the same RabbitMQ holds `celery@host`."""
    name = f"cl{uuid.uuid4().hex[:8]}@%h"
    return world.worker(concurrency, 1, "-n", name)


def settings_of(world: World) -> Settings:
    return Settings.from_env({k: v for k, v in world.env().items() if k.startswith("SHAHI")})


def emit(world: World, count: int, urls: list[str]) -> list[str]:
    return [i for i, _ in emit_rows(world, count, urls)]


def emit_rows(world: World, count: int, urls: list[str], *key: str) -> list[tuple[str, str]]:
    """(delivery id, status) of each delivery of `count` emits to `urls` (with `key`)."""
    env = {**world.env(), "SHAHIHOOKS_URLS": " ".join(urls)}
    done = subprocess.run(
        [sys.executable, "-c", EMITTER, str(count), *key],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [(i, status) for line in done.stdout.splitlines() for i, status in json.loads(line)]


def marks(settings: Settings, ids: list[str]) -> dict[str, str]:
    """Each delivery's done marker ("ok", "dead") or "", read in its shard."""
    found: dict[str, str] = {}
    for state, mine in shards.by_shard(settings, ids):
        keys = ScriptKeys(state.keys.prefix)
        try:
            values = state.client.mget([keys.done(i) for i in mine])
        except OUTAGES:
            state.route.lost() if state.route else None
            values = [None] * len(mine)
        found.update({i: (v or b"").decode() for i, v in zip(mine, values, strict=True)})
    return found


def wait_delivered(settings: Settings, ids: list[str], timeout: float) -> dict[str, str]:
    def all_done() -> dict[str, str] | None:
        found = marks(settings, ids)
        return found if all(found.values()) else None

    return wait_until(all_done, timeout=timeout, what=f"{len(ids)} deliveries done")  # type: ignore[return-value]


def signed(r: object) -> bool:
    headers, body = r.headers, r.body  # type: ignore[attr-defined]
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    mac = base64.b64encode(hmac.new(SECRET.encode(), content, hashlib.sha256).digest()).decode()
    return f"v1,{mac}" in headers["webhook-signature"].split()


def fcalls(cluster: Cluster, port: int) -> int:
    stats = cluster.node(port).info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


def primary_of(cluster: Cluster, key: str) -> int:
    """The port of the primary serving `key`'s slot (CLUSTER SLOTS)."""
    slot = key_slot(key.encode())
    for row in cluster.node(next(iter(cluster.procs))).execute_command("CLUSTER", "SLOTS"):
        if int(row[0]) <= slot <= int(row[1]):
            return int(row[2][1])
    raise AssertionError(f"no primary serves slot {slot}")


def shard_key(settings: Settings, url: str) -> str:
    """A key of `url`'s shard."""
    return shards.shard_prefix(settings.prefix, shards.shard_of_tag(url_tag(url)))


def urls_in(receiver: Receiver, name: str, shard: int, count: int = 1) -> list[str]:
    """`count` receiver URLs whose endpoints live in `shard`."""
    found: list[str] = []
    for n in range(10_000):
        url = receiver.url(f"/cl-{name}-{uuid.uuid4().hex[:6]}-{n}")
        if shards.shard_of_tag(url_tag(url)) == shard:
            found.append(url)
        if len(found) == count:
            return found
    raise AssertionError(f"no URL in shard {shard}")


APP = r"""
import json, os, sys
import shahihooks
from shahihooks.settings import Settings
settings = {}
for line in sys.stdin:
    urls, n, key = json.loads(line)
    env = {**os.environ, "SHAHIHOOKS_URLS": " ".join(urls)}
    mine = settings.setdefault(tuple(urls), Settings.from_env(env))
    try:
        found = shahihooks.emit("ticket.created", {"n": n}, key=key, settings=mine)
        print(json.dumps([[d.id, d.status] for d in found]), flush=True)
    except Exception as exc:
        print(json.dumps(f"{type(exc).__name__}: {exc}"), flush=True)
"""


class App:
    """An app that keeps running and emitting: one emit per request, through one process."""

    def __init__(self, world: World) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", APP],
            env=world.env(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        world.procs.append(self.proc)  # type: ignore[arg-type]

    def emit(self, urls: list[str], n: int, key: str | None = None) -> list[str] | str:
        """The emit's delivery ids, or the error it raised."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([urls, n, key]) + "\n")
        self.proc.stdin.flush()
        found = json.loads(self.proc.stdout.readline())
        return found if isinstance(found, str) else [i for i, _ in found]

    def emit_until_taken(self, urls: list[str], n: int, timeout: float) -> list[str]:
        """Emit with a key until an emit is taken (a try taken before its answer was lost is
        met again as a duplicate, with its ids)."""
        key = f"after-{n}-{uuid.uuid4().hex[:6]}"

        def taken() -> list[str] | None:
            found = self.emit(urls, n, key)
            return None if isinstance(found, str) else found

        return wait_until(taken, timeout=timeout, what=f"emit {n} taken")  # type: ignore[return-value]
