"""A world of real processes for fault tests: a private redis-server on a free port, workers
and emitters as subprocesses configured by environment, and the ledger that checks that
nothing was lost."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.conftest import SECRET, ScriptKeys, free_port
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
EMITTER = r"""
import json, os, sys, time
import shahihooks
count, path, pause = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
for i in range(count):
    start = time.monotonic()
    try:
        (d,) = shahihooks.emit("ticket.created", {"ticket_id": i, "n": i})
        row = {"ok": d.id, "status": d.status}
    except Exception as exc:
        row = {"error": type(exc).__name__, "message": str(exc),
               "shahihooks": isinstance(exc, shahihooks.ShahihooksError)}
    row["s"] = time.monotonic() - start
    print(json.dumps(row), flush=True)
    time.sleep(pause)
"""


@dataclass
class Ledger:
    emitted: int
    delivered: int
    dead: int
    missing: list[str]
    received_total: int
    received_distinct: int

    @property
    def duplicates(self) -> int:
        return self.received_total - self.received_distinct

    def __str__(self) -> str:
        return (
            f"emitted {self.emitted}, delivered {self.delivered}, dead {self.dead}, "
            f"missing {len(self.missing)}, received {self.received_total} "
            f"({self.received_distinct} distinct, {self.duplicates} duplicates)"
        )


@dataclass
class World:
    """A private Redis (append-only) and the environment every subprocess gets."""

    receiver: Receiver
    ca_path: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="shahihooks-faults-"))
    redis_proc: subprocess.Popen[bytes] | None = None
    redis_args: list[str] = field(default_factory=list)  # after (so over) the defaults
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    @property
    def keys(self) -> ScriptKeys:
        return ScriptKeys("faults")

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SHAHIHOOKS_") and k != "DJANGO_SETTINGS_MODULE"
        }
        base.update(
            {
                "SHAHIHOOKS_REDIS_URL": self.url,
                "SHAHIHOOKS_SECRET": SECRET,
                "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
                "SHAHIHOOKS_CA_BUNDLE": self.ca_path,
                "SHAHIHOOKS_PREFIX": "faults",
                "SHAHIHOOKS_QUEUE": "faults",
                # the timings that recovery depends on (timeout, lease, visibility, grace)
                # are the defaults; only retries are quick and the rate limit is off
                "SHAHIHOOKS_RETRY_SCHEDULE": "1,1,1",
                "SHAHIHOOKS_RATE_LIMIT": "0",
                "PYTHONPATH": str(ROOT),
            }
        )
        base.update(self.settings)
        return base

    def start_redis(self) -> None:
        self.redis_proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self.folder,
                *self.redis_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop_redis(self) -> None:
        if self.redis_proc is not None:
            self.redis_proc.send_signal(signal.SIGTERM)
            self.redis_proc.wait(timeout=20)
            self.redis_proc = None

    def worker(
        self, concurrency: int = 8, processes: int = 1, *extra: str
    ) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.folder, "workers.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shahihooks",
                "worker",
                "--processes",
                str(processes),
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
                *extra,
            ],
            env=self.env(),
            stdout=log,
            stderr=log,
            cwd=ROOT,
            start_new_session=True,  # close() ends the group: a supervisor's children too
        )
        self.procs.append(proc)
        return proc

    def emitter(
        self,
        count: int,
        path: str,
        pause_s: float = 0.0,
        env: dict[str, str] | None = None,
        wrap: tuple[str, ...] = (),
    ) -> subprocess.Popen[str]:
        """An app process emitting `count` events (`wrap`: a command to run it under)."""
        proc = subprocess.Popen(
            [*wrap, sys.executable, "-c", EMITTER, str(count), path, str(pause_s)],
            env={**self.env(), "SHAHIHOOKS_URLS": self.receiver.url(path), **(env or {})},
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.procs.append(proc)  # type: ignore[arg-type]
        return proc

    def emit(
        self, count: int, path: str, env: dict[str, str] | None = None, wrap: tuple[str, ...] = ()
    ) -> list[str]:
        return [r["ok"] for r in self.emit_rows(count, path, env, wrap)]

    def emit_rows(
        self, count: int, path: str, env: dict[str, str] | None = None, wrap: tuple[str, ...] = ()
    ) -> list[dict[str, str]]:
        rows = rows_of(self.emitter(count, path, env=env, wrap=wrap), timeout=120)
        assert all("ok" in r for r in rows), rows[:3]
        return rows

    def wait_retrying(self, count: int, timeout: float = 30) -> None:
        """Until `count` deliveries wait for a retry (their first attempts failed)."""
        deadline = time.monotonic() + timeout
        while sum(int(n) for n in self.client.hvals(self.keys.retrying)) < count:
            assert time.monotonic() < deadline, f"{count} first attempts must fail and wait"
            time.sleep(0.05)

    def ledger(self, ids: list[str], path: str) -> Ledger:
        client = self.client
        states = client.mget([self.keys.done(i) for i in ids]) if ids else []
        delivered = sum(1 for s in states if s == b"ok")
        dead_ids = {i for i, s in zip(ids, states, strict=True) if s == b"dead"}
        dead_ids |= {i for i in ids if client.exists(self.keys.dead(i))}
        missing = [i for i, s in zip(ids, states, strict=True) if s != b"ok" and i not in dead_ids]
        got = [
            r.header("webhook-id")
            for r in self.receiver.requests_to(path)
            if 200 <= r.status < 300  # accepted deliveries; failed attempts are not duplicates
        ]
        mine = [g for g in got if g in set(ids)]
        return Ledger(len(ids), delivered, len(dead_ids), missing, len(mine), len(set(mine)))

    def wait_ledger(self, ids: list[str], path: str, timeout: float) -> Ledger:
        deadline = time.monotonic() + timeout
        ledger = self.ledger(ids, path)
        while ledger.missing and time.monotonic() < deadline:
            time.sleep(0.25)
            ledger = self.ledger(ids, path)
        for missing in ledger.missing[:3]:
            print(f"missing {missing}: {self.explain(missing)}")
        return ledger

    def explain(self, delivery_id: str) -> dict[str, object]:
        """Where a delivery stands: its record, schedule entry, and any message carrying it."""
        client = self.client
        queued = [m for m in client.lrange("faults", 0, -1) if delivery_id.encode() in m]
        unacked = [m for m in client.hvals("unacked") if delivery_id.encode() in m]
        return {
            "done": client.get(self.keys.done(delivery_id)),
            "record": client.hgetall(self.keys.delivery(delivery_id)),
            "due_ms": client.zscore(self.keys.schedule, delivery_id),
            "queued": len(queued),
            "unacked": len(unacked),
            "log": [
                e[1] for e in client.xrange(self.keys.log) if e[1][b"id"] == delivery_id.encode()
            ],
            "folder": self.folder,
        }

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the process and whatever it started
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.stop_redis()
        if not os.environ.get("SHAHIHOOKS_KEEP_FAULTS"):
            shutil.rmtree(self.folder, ignore_errors=True)


def halt(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=timeout)


def rows_of(emitter: subprocess.Popen[str], timeout: float = 180) -> list[dict[str, Any]]:
    """What an emitter printed, once it is done: a row per emit, `ok` (the delivery id) or
    `error` (the exception's class name, `message`, `shahihooks`: one of ours?)."""
    out, _ = emitter.communicate(timeout=timeout)
    return [json.loads(line) for line in out.splitlines()]


def wait_requests(receiver: Receiver, path: str, count: int, timeout: float = 60) -> int:
    """Wait until `count` requests reached `path` (or `timeout` passed); how many had."""
    deadline = time.monotonic() + timeout
    while len(receiver.requests_to(path)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(receiver.requests_to(path))


def kill_mid_run(world: World, receiver: Receiver, path: str, after: int) -> int:
    """Start a worker and SIGKILL it once `after` requests reached `path` (or a minute
    passed); how many had by the kill."""
    first = world.worker()
    wait_requests(receiver, path, after)
    halt(first, signal.SIGKILL)
    return len(receiver.requests_to(path))
