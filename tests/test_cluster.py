"""A Redis Cluster as the state (SHAHIHOOKS_REDIS_CLUSTER), RabbitMQ as the broker: a real
cluster of 3 primaries and 3 replicas on 127.0.0.1, real workers, the HTTPS receiver; the
shard mapping as pure functions."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from kombu import Connection
from redis.crc import key_slot

from shahihooks import checks, dead, health, shards, stats
from shahihooks.connections import OUTAGES
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.errors import ConfigurationError
from shahihooks.keys import Keys, url_tag
from shahihooks.settings import Settings
from shahihooks.statetypes import Placed, StoredEvent, Target
from tests.conftest import REDIS_URL, SECRET, ScriptKeys, connects, free_port, wait_until
from tests.faults import World, halt, wait_requests
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


# --- the shard mapping (pure) ---


def test_shard_slots_spread_one_in_each_sixteenth() -> None:
    tags = shards.shard_tags()
    assert len(tags) == shards.N_SHARDS == len(set(tags))
    slots = [key_slot(shards.shard_prefix("shahihooks", k).encode()) for k in range(16)]
    assert [s // 1024 for s in slots] == list(range(16))
    # every key of a shard hashes to its slot: its hash tag
    prefix = shards.shard_prefix("p", 3)
    assert key_slot(f"{prefix}:dlv:evt_1-abc".encode()) == key_slot(f"{prefix}:schedule".encode())


def test_shard_mapping_is_stable() -> None:
    assert shards.shard_tags() == shards.shard_tags.__wrapped__()
    assert shards.shard_prefix("shahihooks", 0) == f"shahihooks:{{{shards.shard_tags()[0]}}}"
    tag = url_tag("https://example.com/hook")
    assert shards.shard_of_tag(tag) == int(tag[:8], 16) % 16
    assert shards.shard_of_delivery(f"evt_{'a' * 32}-{tag}") == shards.shard_of_tag(tag)
    spread = {shards.shard_of_tag(url_tag(f"https://example.com/{i}")) for i in range(200)}
    assert spread == set(range(16))


def test_cluster_setting_refuses_a_redis_broker() -> None:
    with pytest.raises(ConfigurationError, match="redis://127.0.0.1:6379/0"):
        Settings(redis_cluster=True)
    with pytest.raises(ConfigurationError, match="must be RabbitMQ"):
        Settings(redis_cluster=True, broker_url="sentinel://127.0.0.1:26379")
    assert Settings(redis_cluster=True, broker_url=AMQP).redis_cluster


def test_cluster_setting_refuses_a_redis_that_is_not_a_cluster() -> None:
    settings = Settings(redis_cluster=True, broker_url=AMQP, redis_url=REDIS_URL.rsplit("/", 1)[0])
    with pytest.raises(ConfigurationError, match="is not a node of a Redis Cluster"):
        shards.shards(settings)


# --- a real cluster ---


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus (port + 10000) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and port not in taken and not connects(port + 10000):
            return port


@dataclass
class Cluster:
    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="shahihooks-cluster-"))
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, nodes: int = 6) -> None:
        ports: set[int] = set()
        for _ in range(nodes):
            ports.add(_cluster_port(ports))
        for port in sorted(ports):
            self.procs[port] = subprocess.Popen(
                [
                    "redis-server",
                    *("--port", str(port), "--bind", "127.0.0.1", "--dir", self.folder),
                    *("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
                    *("--cluster-config-file", f"{self.folder}/nodes-{port}.conf"),
                    *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                ],
                stdout=subprocess.DEVNULL,
            )
        for port in ports:
            wait_until(lambda p=port: connects(p), timeout=10, what=f"redis-server on {port}")
        nodes = [f"127.0.0.1:{p}" for p in sorted(ports)]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self.ok, timeout=30, what="cluster_state:ok")

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

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

    def close(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
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


@pytest.fixture
def world(cluster: Cluster, receiver: Receiver, ca: tuple[object, str]) -> Iterator[World]:
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


def test_cluster_delivers_every_event_with_every_primary_working(
    world: World, receiver: Receiver, cluster: Cluster
) -> None:
    for port in cluster.procs:
        cluster.node(port).config_resetstat()
    paths = [f"/cl-{uuid.uuid4().hex[:6]}-{n}" for n in range(30)]
    worker(world, 16)
    started = time.monotonic()
    ids = emit(world, 10, [receiver.url(p) for p in paths])
    assert len(ids) == len(set(ids)) == 300
    settings = settings_of(world)
    assert set(wait_delivered(settings, ids, timeout=90).values()) == {"ok"}
    took = time.monotonic() - started
    got = [r for p in paths for r in receiver.requests_to(p) if r.status == 200]
    assert len(got) == 300
    assert {r.header("webhook-id") for r in got} == set(ids)
    assert all(signed(r) for r in got)
    calls = [fcalls(cluster, port) for port in cluster.masters()]
    print(f"\ncluster: 10 emits x 30 endpoints delivered in {took:.1f} s; FCALLs {calls}")
    # every primary serves the shard of some of these deliveries (the mover's claim calls
    # every shard, so FCALLs alone would not say it): each did part of the work
    served = {
        primary_of(cluster, shards.shard_prefix(settings.prefix, shards.shard_of_delivery(i)))
        for i in ids
    }
    assert served == set(cluster.masters())


def primary_of(cluster: Cluster, key: str) -> int:
    """The port of the primary serving `key`'s slot (CLUSTER SLOTS)."""
    slot = key_slot(key.encode())
    for row in cluster.node(next(iter(cluster.procs))).execute_command("CLUSTER", "SLOTS"):
        if int(row[0]) <= slot <= int(row[1]):
            return int(row[2][1])
    raise AssertionError(f"no primary serves slot {slot}")


def test_cluster_readers_and_endpoint_store_cover_every_shard(
    world: World, receiver: Receiver, cluster: Cluster
) -> None:
    settings = settings_of(world)
    paths = [f"/cl-read-{uuid.uuid4().hex[:6]}-{n}" for n in range(20)]
    while len({shards.shard_of_tag(url_tag(receiver.url(p))) for p in paths}) <= 8:
        paths.append(f"/cl-read-{uuid.uuid4().hex[:6]}-{len(paths)}")  # rarely: over 9 shards
    urls = [receiver.url(p) for p in paths]
    store = EndpointStore(shards.shards(settings)[0].client, settings)
    for url in urls:  # the store is written to every shard (emit reads the first)
        store.add(Endpoint(url))
    assert {e.url for e in store.all()} == set(urls)
    assert len({shards.shard_of_tag(url_tag(u)) for u in urls}) > 8
    worker(world, 8)
    ids = emit(world, 3, [])
    assert len(ids) == 3 * len(urls)
    assert set(wait_delivered(settings, ids, timeout=60).values()) == {"ok"}
    logged = stats.read_log(settings, limit=1000)
    assert {row["id"] for row in logged} >= set(ids)
    assert [row["entry"] for row in logged] == sorted(
        (row["entry"] for row in logged), key=lambda e: tuple(map(int, e.split("-")))
    )
    rows = stats.read_stats(settings)
    assert sum(r.count for r in rows if r.url in urls) == 3 * len(urls)
    assert {h.state for h in health.endpoint_health(settings, urls)} == {"ok"}
    primaries = [c.what for c in checks.server_checks(settings) if "primary" in c.what]
    assert len({t.split("primary ")[1].split()[0].removesuffix("'s") for t in primaries}) == 3
    assert not any("is a Redis Cluster" in c.what for c in checks.server_checks(settings))
    assert store.remove(urls[0])
    assert urls[0] not in {e.url for e in store.all()}


def test_cluster_emit_with_a_key_is_stored_once_over_every_shard(
    world: World, receiver: Receiver
) -> None:
    paths = [f"/cl-key-{uuid.uuid4().hex[:6]}-{n}" for n in range(30)]
    urls = [receiver.url(p) for p in paths]
    first = emit_rows(world, 1, urls, "order-1")
    assert [i for i, _ in first] == [f"{first[0][0].split('-')[0]}-{url_tag(u)}" for u in urls]
    assert {status for _, status in first} == {"queued"}
    again = emit_rows(world, 1, urls, "order-1")
    assert sorted(again) == sorted((i, "duplicate") for i, _ in first)
    worker(world, 8)
    ids = [i for i, _ in first]
    assert set(wait_delivered(settings_of(world), ids, timeout=60).values()) == {"ok"}
    got = [r.header("webhook-id") for p in paths for r in receiver.requests_to(p)]
    assert sorted(got) == sorted(ids)


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


def test_cluster_emit_with_a_key_is_a_duplicate_with_other_endpoints(
    world: World, receiver: Receiver
) -> None:
    """The key's marker is on the key's lead shard, whatever shards the endpoints are in:
    a first emit to one shard, the second to another (neither the lead) is a duplicate."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-2"))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    first = emit_rows(world, 1, urls_in(receiver, "k1", one), "order-2")
    assert [s for _, s in first] == ["queued"]
    again = emit_rows(world, 1, urls_in(receiver, "k2", other, 2), "order-2")
    assert again == [(first[0][0], "duplicate")]
    # the lead shard's step had no delivery: its body holds the nonce for the TTL only
    state = shards.shards(settings)[lead]
    body = state.keys.body(first[0][0].split("-")[0])
    assert sorted(state.client.hkeys(body)) == [b"nonce", b"refs"]
    assert 0 < state.client.ttl(body) <= settings.idempotency_ttl_s


def test_cluster_throttled_event_is_throttled_with_other_endpoints(
    world: World, receiver: Receiver
) -> None:
    """The throttle lives on its own lead shard: emits of the same value to endpoints in
    other shards (and with other keys) meet it."""
    world.settings["SHAHIHOOKS_THROTTLE"] = "ticket.created:ticket_id:3600"
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).throttle("ticket.created", 0))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    first = emit_rows(world, 1, urls_in(receiver, "t1", one), "view-1")
    assert [s for _, s in first] == ["queued"]
    assert emit_rows(world, 1, urls_in(receiver, "t2", other, 2), "view-2") == []
    assert emit_rows(world, 1, urls_in(receiver, "t3", lead) + urls_in(receiver, "t4", one)) == []


def test_cluster_emit_tried_again_after_a_lost_answer_is_no_duplicate(
    world: World, receiver: Receiver
) -> None:
    """A try of the same emit (its nonce) whose lead step of no delivery had run answers
    'again' there, and the emit completes as placed, not as a duplicate of itself."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-4"))
    (url,) = urls_in(receiver, "a1", (lead + 1) % shards.N_SHARDS)
    msg = f"evt_{uuid.uuid4().hex}"
    target = Target(f"{msg}-{url_tag(url)}", url_tag(url), url, url, 0, "urls")
    new = StoredEvent(msg, "ticket.created", int(time.time()), "{}", "n1", key="order-4")
    first = shards.emit(settings, new, [target], [])
    assert first.placed == (Placed.QUEUED,)
    assert shards.emit(settings, new, [target], []) == first


def test_cluster_emit_again_after_a_crash_between_steps_runs_the_missing_step(
    world: World, receiver: Receiver
) -> None:
    """First step (the lead's, with no delivery) and the next ran, the last did not: the
    same key again stores exactly the last step's deliveries and answers the first's."""
    settings = settings_of(world)
    lead = shards.shard_of_name(Keys(settings.prefix).emitted("order-3"))
    one, other = [k for k in range(shards.N_SHARDS) if k != lead][:2]
    urls = urls_in(receiver, "c1", one, 2) + urls_in(receiver, "c2", other, 3)
    first = emit_rows(world, 1, urls, "order-3")
    ids = [i for i, _ in first]
    state = shards.shards(settings)[other]
    msg = ids[0].split("-")[0]
    # as if the process had died after step 1 (shard `one`): step 2 (`other`) never ran
    state.client.delete(
        state.keys.emitted("order-3", 2),
        state.keys.body(f"{msg}.2"),
        *(state.keys.delivery(i) for i in ids[2:]),
    )
    again = emit_rows(world, 1, urls, "order-3")
    assert again == [(i, "duplicate") for i in ids]
    assert all(state.client.exists(state.keys.delivery(i)) for i in ids[2:])
    assert state.client.hget(state.keys.body(f"{msg}.2"), "refs") == b"3"


def test_cluster_retry_then_delivery(world: World, receiver: Receiver) -> None:
    path = f"/cl-retry-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: 500 if n <= 2 else 200)
    worker(world, 8)
    (delivery,) = emit(world, 1, [receiver.url(path)])
    assert wait_delivered(settings_of(world), [delivery], timeout=30) == {delivery: "ok"}
    assert [r.status for r in receiver.requests_to(path)] == [500, 500, 200]


def test_cluster_dead_letter_and_replay(world: World, receiver: Receiver) -> None:
    path = f"/cl-dead-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: 500 if n <= 4 else 200)
    worker(world, 8)
    (gone,) = emit(world, 1, [receiver.url(path)])
    settings = settings_of(world)
    assert wait_delivered(settings, [gone], timeout=30) == {gone: "dead"}
    assert gone in dead.list_ids(settings)
    letter = dead.get(gone, settings)
    assert letter is not None
    assert letter.reason
    assert dead.replay(gone, settings)
    wait_until(lambda: marks(settings, [gone])[gone] == "ok", timeout=30, what="replayed")
    assert [r.status for r in receiver.requests_to(path)][-1] == 200
    assert gone not in dead.list_ids(settings)


def test_cluster_worker_sigkill_loses_nothing(world: World, receiver: Receiver) -> None:
    paths = [f"/cl-kill-{uuid.uuid4().hex[:6]}-{n}" for n in range(10)]
    for p in paths:
        receiver.rule(p, lambda n: (time.sleep(0.02), 200)[1])
    ids = emit(world, 20, [receiver.url(p) for p in paths])
    first = worker(world, 4)
    wait_until(lambda: sum(len(receiver.requests_to(p)) for p in paths) >= 40, timeout=60)
    halt(first, signal.SIGKILL)
    at_kill = sum(len(receiver.requests_to(p)) for p in paths)
    assert at_kill < 200, "the kill must land mid-run"
    worker(world, 8)
    assert set(wait_delivered(settings_of(world), ids, timeout=150).values()) == {"ok"}
    got = {r.header("webhook-id") for p in paths for r in receiver.requests_to(p)}
    assert got == set(ids)


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


def test_cluster_primary_failover_loses_nothing(
    world: World, receiver: Receiver, cluster: Cluster
) -> None:
    """A running app emits before shard 0's primary is killed, while it is away (to endpoints
    of other primaries: the endpoint store is read from another shard) and after a replica is
    promoted; a worker that keeps running delivers everything."""
    settings = settings_of(world)
    victim = primary_of(cluster, shards.shard_prefix(settings.prefix, 0))
    # SHAHIHOOKS_REDIS_URL names another node: a worker's process starting later asks it
    named = next(p for p in cluster.procs if p != victim)
    world.settings["SHAHIHOOKS_REDIS_URL"] = f"redis://127.0.0.1:{named}/0"
    paths = [f"/cl-fail-{uuid.uuid4().hex[:6]}-{n}" for n in range(12)]
    for p in paths:
        receiver.rule(p, lambda n: (time.sleep(0.05), 200)[1])
    urls = [receiver.url(p) for p in paths]
    elsewhere = [u for u in urls if primary_of(cluster, shard_key(settings, u)) != victim]
    assert 0 < len(elsewhere) < len(urls)
    app = App(world)
    before = [i for n in range(20) for i in app.emit(urls, n)]
    assert len(before) == 20 * len(urls), before
    worker(world, 4)
    wait_requests(receiver, paths[0], 3)
    cluster.kill(victim)
    away = app.emit(elsewhere, 100)
    assert not isinstance(away, str), away
    assert primary_of(cluster, shards.shard_prefix(settings.prefix, 0)) == victim, "not moved yet"
    promoted = lambda: cluster.ok() and victim not in cluster.masters()  # noqa: E731
    wait_until(promoted, timeout=30, what="a replica promoted")
    after = [i for n in range(5) for i in app.emit_until_taken(urls, 200 + n, timeout=30)]
    sent = before + away + after
    assert set(wait_delivered(settings_of(world), sent, timeout=180).values()) == {"ok"}
    got = {r.header("webhook-id") for p in paths for r in receiver.requests_to(p)}
    assert got == set(sent)
    print(f"\nfailover of {victim}: {len(sent)} delivered by a running app's emits")


def shard_key(settings: Settings, url: str) -> str:
    """A key of `url`'s shard."""
    return shards.shard_prefix(settings.prefix, shards.shard_of_tag(url_tag(url)))
