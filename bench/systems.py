"""What the bench compares, and the worker setups each one runs at.

  N   baseline: the naive webhook task a user would write (bench/naive.py)
  C   baseline: a no-op Celery task, Celery's own ceiling on this machine
  S   shahihooks as checked out, rate limit, idempotency, log and stats all on
  S0  shahihooks at an earlier commit (`--before`), to show a change did not cost throughput
  P   peer: django-webhook (Celery 5, SQLite), from its own venv
  SR  shahihooks with RabbitMQ as the broker (the state in Redis as always)

Every system gets the same setups; a setup is a pool and a shape: `threads 2x16` is two
worker processes of 16 threads each, `prefork 2` one worker with two child processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.world import PY, ROOT, World

DATA_CONTENT = "x" * 940  # with the other fields, a body of about 1 KB
PEER_VENV = ROOT / ".venv-peer"
PEER_PACKAGES = ["django-webhook==0.0.15", "celery[redis]>=5.3,<6", "redis[hiredis]"]


class Unavailable(Exception):
    """A system that cannot run here; the reason is reported in its place."""


@dataclass(frozen=True)
class Setup:
    pool: str  # threads | prefork
    processes: int
    threads: int = 0  # per process, for the threads pool

    @classmethod
    def parse(cls, text: str) -> Setup:
        found = re.fullmatch(r"(threads) (\d+)x(\d+)|(prefork) (\d+)", text.strip())
        if not found:
            raise ValueError(f"a setup is 'threads PxT' or 'prefork P', got {text!r}")
        if found[1]:
            return cls("threads", int(found[2]), int(found[3]))
        return cls("prefork", int(found[5]))

    @property
    def label(self) -> str:
        if self.pool == "threads":
            return f"threads {self.processes}x{self.threads}"
        return f"prefork {self.processes}"

    def worker_options(self) -> list[list[str]]:
        """Celery options of each worker process to start."""
        if self.pool == "prefork":
            return [["-P", "prefork", "-c", str(self.processes)]]
        return [["-P", "threads", "-c", str(self.threads)]] * self.processes


class System:
    key = ""
    name = ""
    unit = "deliveries/s"
    queue = ""
    at_receiver = True  # counted as 2xx answers at the receiver (else as messages consumed)
    holds = "broker"  # what the bench's Redis holds for it: broker, state, or both
    replayed = False  # its last enqueue restored a saved queue: no enqueue's Redis cost
    python = PY
    cwd = ROOT
    app = ""

    def prepare(self, world: World) -> None:
        """Anything to set up once; raises Unavailable when the system cannot run here."""

    def enqueue(self, world: World, n: int, path: str) -> None:
        raise NotImplementedError

    def env(self, world: World) -> dict[str, str]:
        return world.env()

    def workers(
        self, setup: Setup, extra: tuple[str, ...] = (), queue: str = ""
    ) -> list[list[str]]:
        """The argv of each worker process of `setup` (consuming `queue`, else its own)."""
        celery = [self.python, "-m", "celery", "-A", self.app, "worker", "-Q", queue or self.queue]
        quiet = ["--loglevel", "ERROR", "--without-gossip", "--without-mingle"]
        return [
            [*celery, *options, "-n", f"{self.key.lower()}{i}@%h", *quiet, *extra]
            for i, options in enumerate(setup.worker_options(), 1)
        ]


class Naive(System):
    key, name, queue, app = "N", "naive task", "naive", "bench.naive"

    def __init__(self) -> None:
        self._queued: dict[tuple[int, str], bytes] = {}

    def enqueue(self, world: World, n: int, path: str) -> None:
        """`apply_async` n times; the queue is kept (DUMP) and given back (RESTORE) after."""
        saved = self._queued.get((n, path))
        self.replayed = saved is not None
        if saved is not None:
            world.redis.restore(self.queue, 0, saved, replace=True)
            return
        from bench import naive

        naive.app.conf.broker_url = world.redis_url
        with naive.app.producer_or_acquire() as producer:
            for i in range(n):
                self.send(naive, producer, world.url(path), i)
        self._queued[(n, path)] = world.redis.dump(self.queue)  # type: ignore[assignment]

    def send(self, naive: Any, producer: Any, url: str, i: int) -> None:
        data = {"ticket_id": i, "title": "Login issue", "content": DATA_CONTENT}
        naive.send.apply_async((url, "ticket.created", data), producer=producer)


class Noop(Naive):
    key, name, queue, app = "C", "no-op task", "naive", "bench.naive"
    unit, at_receiver = "tasks/s", False

    def send(self, naive: Any, producer: Any, url: str, i: int) -> None:
        naive.noop.apply_async(producer=producer)


class Shahihooks(System):
    """shahihooks from this checkout, or from `ref` (a commit) exported beside it."""

    key, name, queue, app = "S", "shahihooks", "shahihooks", "shahihooks.app"
    holds = "both"

    def __init__(self, ref: str | None = None) -> None:
        self.ref = ref
        if ref:
            self.key, self.name = "S0", f"shahihooks at {ref}"

    def prepare(self, world: World) -> None:
        if not self.ref:
            return
        folder = Path(world.tmp) / f"at-{self.ref}"
        folder.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", self.ref, "shahihooks"],
            capture_output=True,
            check=False,
        )
        if archive.returncode:
            raise Unavailable(f"git archive {self.ref}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
        self.cwd = folder  # before ROOT on sys.path: its shahihooks is the one imported

    def env(self, world: World) -> dict[str, str]:
        return world.env(PYTHONPATH=f"{self.cwd}:{ROOT}")

    def enqueue(self, world: World, n: int, path: str) -> None:
        emit_urls(world, self, n, [world.url(path)])


class ShahihooksRabbit(Shahihooks):
    """shahihooks with the broker on RabbitMQ (BENCH_AMQP_URL, else the local one), on a
    queue of this run's own, purged before each cell."""

    key, name = "SR", "shahihooks, RabbitMQ broker"
    holds = "state"

    def __init__(self) -> None:
        super().__init__()
        self.amqp = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
        self.queue = f"bench-sr-{os.getpid()}"

    def prepare(self, world: World) -> None:
        from kombu import Connection

        try:
            with Connection(self.amqp, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:  # any reason it cannot connect is reported in its place
            raise Unavailable(f"RabbitMQ at {self.amqp}: {exc}") from exc

    def env(self, world: World) -> dict[str, str]:
        return world.env(SHAHIHOOKS_BROKER_URL=self.amqp, SHAHIHOOKS_QUEUE=self.queue)

    def enqueue(self, world: World, n: int, path: str) -> None:
        self.purge()
        emit_urls(world, self, n, [world.url(path)])

    def purge(self) -> None:
        """An empty queue: a cell stopped early leaves messages behind."""
        from kombu import Connection

        with Connection(self.amqp) as conn, contextlib.suppress(*conn.channel_errors):
            conn.default_channel.queue_purge(self.queue)  # fails before the first cell


def emit_urls(
    world: World,
    system: System,
    n: int,
    urls: list[str],
    ids: bool = False,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Emit `n` events to `urls` in a subprocess (the checkout's or an earlier shahihooks),
    with `env` over the system's environment; the delivery ids if `ids`."""
    argv = [system.python, "-m", "bench.emitter", str(n), *(["--ids"] if ids else [])]
    full = {**system.env(world), "SHAHIHOOKS_URLS": " ".join(urls), **(env or {})}
    return world.run(argv, full, system.cwd).split()


class Peer(System):
    key, name, queue, app = "P", "django-webhook", "peer", "bench.peer.worker"
    python = str(PEER_VENV / "bin" / "python")

    def prepare(self, world: World) -> None:
        if not (PEER_VENV / "bin" / "python").exists():
            install_peer()
        check = subprocess.run(
            [self.python, "-c", "import django_webhook, celery, django"],
            capture_output=True,
            check=False,
        )
        if check.returncode:
            raise Unavailable(f"django-webhook does not import: {check.stderr.decode()[-300:]}")

    def env(self, world: World) -> dict[str, str]:
        return world.env(BENCH_PEER_DB=str(Path(world.tmp) / "peer.sqlite3"))

    def enqueue(self, world: World, n: int, path: str) -> None:
        argv = [self.python, "-W", "ignore", "-m", "bench.peer.enqueue", str(n), world.url(path)]
        world.run(argv, self.env(world))


def install_peer() -> None:
    """django-webhook from PyPI into `.venv-peer`, apart from shahihooks' own venv."""
    steps = [
        [PY, "-m", "venv", str(PEER_VENV)],
        [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, check=False)
        if done.returncode:
            raise Unavailable(f"{' '.join(argv[:4])}: {done.stderr.decode()[-300:]}")
