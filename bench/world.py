"""The bench's private world: a redis-server on a free port, the asyncio receiver, and Celery
workers as subprocesses, with their logs in one temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SECRET = "bench-secret-0123456789"


BENCH_PATHS = (
    "/hook",
    "/slow",
    "/fail",
    "/hang",  # never answers (bench/isolation.py)
    "/lat/alone",  # arrivals kept per delivery id (bench/isolation.py)
    "/lat/paired",
    "/lat/beside",
    *(f"/hook{i}" for i in range(10)),
    *(f"/fail{i}" for i in range(10)),
)


class Stalled(RuntimeError):
    """What was waited for stopped making progress."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise Stalled(f"timed out after {timeout:g} s waiting for {what}")


def wait_progress(
    count: Callable[[], int], target: int, what: str, stall_s: float = 60, every: float = 0.05
) -> int:
    """Poll `count` until it reaches `target`; give up when it has not moved for `stall_s`."""
    last, moved = -1, time.monotonic()
    while True:
        now = count()
        if now >= target:
            return now
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise Stalled(f"{what}: stuck at {now} of {target} for {stall_s:g} s")
        time.sleep(every)


def rss_kb(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (prefork children count too)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


class World:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="shahihooks-bench-")
        self.redis_port, self.http_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis = redis.Redis.from_url(self.redis_url)
        os.environ["BENCH_BROKER"] = self.redis_url  # bench.naive's app, imported here too
        self.services: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    # -- services -------------------------------------------------------------------------
    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", self.tmp]
        self.services.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        wait(self._pings, 10, "redis")
        receiver = [PY, "-m", "bench.receiver", str(self.http_port)]
        self.services.append(subprocess.Popen(receiver, cwd=ROOT))
        wait(lambda: self.receiver("/_stats") is not None, 10, "receiver")

    def _pings(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in self.services:
            proc.terminate()
        for proc in self.services:
            proc.wait(timeout=10)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def receiver(self, path: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as resp:
                return json.loads(resp.read() or b"{}")  # type: ignore[no-any-return]
        except OSError:
            return None

    def received(self) -> dict[str, Any]:
        return self.receiver("/_stats") or {}

    def fresh(self) -> None:
        """An empty Redis and a receiver that has seen nothing."""
        self.redis.flushall()
        self.receiver("/_reset")

    # -- processes ------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every subprocess: shahihooks pointed at the private Redis."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SHAHIHOOKS_", "DJANGO"))}
        base.update(
            {
                "BENCH_BROKER": self.redis_url,
                "SHAHIHOOKS_REDIS_URL": self.redis_url,
                "SHAHIHOOKS_SECRET": SECRET,
                "SHAHIHOOKS_ALLOW_HTTP": "1",
                "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
                # the limit is checked on every attempt, never reached
                "SHAHIHOOKS_RATE_LIMIT": "1000000000",
                # every URL the bench sends to: a worker checks each delivery's URL against
                # its own list (an emitter sends to a few of them)
                "SHAHIHOOKS_URLS": " ".join(self.url(p) for p in BENCH_PATHS),
                "PYTHONPATH": str(ROOT),
            }
        )
        base.update(extra)
        return base

    def spawn(
        self, argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.tmp, "workers.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def run(self, argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> str:
        """Run a helper to its end (an emitter, an enqueuer); its output, or its error."""
        done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def halt(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc in self.workers:
            self.workers.remove(proc)

    def pending(self, queue: str) -> int:
        """Messages not yet acknowledged: in the queue or held by a worker."""
        return int(self.redis.llen(queue)) + int(self.redis.hlen("unacked"))

    def commandstats(self) -> dict[str, int]:
        stats: dict[str, Any] = self.redis.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
