"""`make bench`: shahihooks against a naive Celery sender, on this machine, in one process.

Everything runs locally: a private redis-server, a fast asyncio receiver (its own ceiling is
reported), Celery workers as subprocesses. Each figure is measured RUNS times and reported
as the median with min–max; ratios are between medians of the same run of this script,
because absolute numbers drift on a shared machine. Results go to bench-results.json too.

    python -m bench.run [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CELERY = str(Path(PY).parent / "celery")
SECRET = "bench-secret-0123456789"
DATA_1KB = {"ticket_id": 123, "title": "Login issue", "content": "x" * 940}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, runs: int, n: int) -> None:
        self.runs, self.n = runs, n
        self.tmp = tempfile.mkdtemp(prefix="shahihooks-bench-")
        self.redis_port, self.http_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "n": n, "runs": runs}

    # -- services -------------------------------------------------------------------------
    def start(self) -> None:
        self.procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self.tmp,
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        self.redis = redis.Redis.from_url(self.redis_url)
        wait(self._pings, 10, "redis")
        self.procs.append(
            subprocess.Popen([PY, "-m", "bench.receiver", str(self.http_port)], cwd=ROOT)
        )
        wait(lambda: self.receiver("/_stats") is not None, 10, "receiver")

    def _pings(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)

    def receiver(self, path: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}{path}",
                timeout=2,
            ) as resp:
                return json.loads(resp.read() or b"{}")  # type: ignore[no-any-return]
        except OSError:
            return None

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SHAHIHOOKS_", "DJANGO"))}
        base.update(
            {
                "BENCH_BROKER": self.redis_url,
                "SHAHIHOOKS_REDIS_URL": self.redis_url,
                "SHAHIHOOKS_SECRET": SECRET,
                "SHAHIHOOKS_ALLOW_HTTP": "1",
                "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
                "SHAHIHOOKS_RATE_LIMIT": "1000000000",
                "SHAHIHOOKS_LOG_MAX_LEN": "100000",
                "PYTHONPATH": str(ROOT),
            }
        )
        base.update(extra)
        return base

    def worker(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.tmp, "worker.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [CELERY, *args, "--loglevel", "ERROR", "--without-gossip", "--without-mingle"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        return proc

    @staticmethod
    def halt(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pending(self, queue: str) -> int:
        return int(self.redis.llen(queue)) + int(self.redis.hlen("unacked"))

    # -- measurements ---------------------------------------------------------------------
    def drain(
        self,
        enqueue: Callable[[], None],
        worker_args: list[list[str]],
        env: dict[str, str],
        queue: str,
        count_at_receiver: bool = True,
    ) -> float:
        """Deliveries (or tasks) per second for `self.n` pre-enqueued items."""
        self.redis.flushall()
        self.receiver("/_reset")
        enqueue()
        workers = [self.worker(a, env) for a in worker_args]
        try:
            if count_at_receiver:
                wait(
                    lambda: (self.receiver("/_stats") or {}).get("count", 0) >= self.n,
                    600,
                    "deliveries",
                    every=0.05,
                )
                stats = self.receiver("/_stats") or {}
                return (self.n - 1) / (stats["last"] - stats["first"])
            start = wait(
                lambda: self.pending(queue) < self.n and time.monotonic(), 60, "start", every=0.002
            )
            wait(lambda: self.pending(queue) == 0, 600, "drain", every=0.005)
            return self.n / (time.monotonic() - start)
        finally:
            for proc in workers:
                self.halt(proc)

    def repeat(self, name: str, once: Callable[[], float], unit: str) -> dict[str, Any]:
        values = [once() for _ in range(self.runs)]
        row = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "values": values,
            "unit": unit,
        }
        self.results[name] = row
        print(
            f"  {name:<44} {row['median']:>10.1f} {unit}  "
            f"(min {row['min']:.1f}, max {row['max']:.1f})",
            flush=True,
        )
        return row

    # -- the two baselines --------------------------------------------------------------------
    def naive_enqueue(self, path: str = "/hook", count: int | None = None) -> Callable[[], None]:
        def enqueue() -> None:
            os.environ["BENCH_BROKER"] = self.redis_url
            from bench import naive

            naive.app.conf.broker_url = self.redis_url
            url = f"http://127.0.0.1:{self.http_port}{path}"
            with naive.app.producer_or_acquire() as producer:
                for i in range(count or self.n):
                    naive.send.apply_async(
                        (url, "ticket.created", {**DATA_1KB, "ticket_id": i}), producer=producer
                    )

        return enqueue

    def noop_enqueue(self) -> None:
        from bench import naive

        naive.app.conf.broker_url = self.redis_url
        with naive.app.producer_or_acquire() as producer:
            for _ in range(self.n):
                naive.noop.apply_async(producer=producer)

    # -- shahihooks -----------------------------------------------------------------------------
    def configure_shahihooks(self, urls: list[str], **changes: Any) -> Any:
        import shahihooks
        from shahihooks.settings import Settings

        env = self.env(SHAHIHOOKS_URLS=" ".join(urls))
        values = {k[len("SHAHIHOOKS_") :]: v for k, v in env.items() if k.startswith("SHAHIHOOKS_")}
        return shahihooks.configure(Settings.from_mapping(values).with_(**changes))

    def shahihooks_enqueue(
        self, path: str = "/hook", count: int | None = None
    ) -> Callable[[], None]:
        def enqueue() -> None:
            import shahihooks

            self.configure_shahihooks([f"http://127.0.0.1:{self.http_port}{path}"])
            for i in range(count or self.n):
                shahihooks.emit("ticket.created", {**DATA_1KB, "ticket_id": i})

        return enqueue


def shahihooks_worker(pool: str, concurrency: int, events: bool = False) -> list[str]:
    args = [
        "-A",
        "shahihooks.app",
        "worker",
        "-Q",
        "shahihooks",
        "-P",
        pool,
        "-c",
        str(concurrency),
    ]
    return args + (["-E"] if events else [])


def run(quick: bool) -> dict[str, Any]:
    b = Bench(runs=1 if quick else 3, n=2000 if quick else 20_000)
    b.start()
    try:
        return measure(b)
    finally:
        b.stop()


def measure(b: Bench) -> dict[str, Any]:
    print(
        f"\nshahihooks bench: {b.n:,} deliveries per run, {b.runs} runs, {os.cpu_count()} cores\n",
        flush=True,
    )
    receiver_ceiling(b)
    naive_env = b.env()
    prefork2 = ["-A", "bench.naive", "worker", "-Q", "naive", "-P", "prefork", "-c", "2"]
    base_n = b.repeat(
        "baseline N: naive task, prefork 2",
        lambda: b.drain(b.naive_enqueue(), [prefork2], naive_env, "naive"),
        "deliveries/s",
    )
    base_c = b.repeat(
        "baseline C: no-op tasks, prefork 2",
        lambda: b.drain(b.noop_enqueue, [prefork2], naive_env, "naive", count_at_receiver=False),
        "tasks/s",
    )
    env = b.env()
    setups = {
        "threads 1x16": [shahihooks_worker("threads", 16)],
        "threads 2x8": [shahihooks_worker("threads", 8)] * 2,
        "threads 2x16": [shahihooks_worker("threads", 16)] * 2,
        "threads 3x8": [shahihooks_worker("threads", 8)] * 3,
        "prefork 2": [shahihooks_worker("prefork", 2)],
    }
    pool_rates = {}
    for label, workers in setups.items():
        saved_runs, b.runs = b.runs, 1
        pool_rates[label] = b.repeat(
            f"shahihooks pool trial: {label}",
            lambda w=workers: b.drain(b.shahihooks_enqueue(), w, env, "shahihooks"),
            "deliveries/s",
        )["median"]
        b.runs = saved_runs
    best = max(pool_rates, key=pool_rates.__getitem__)
    b.results["recommended_setup"] = best
    ours = b.repeat(
        f"shahihooks end to end ({best})",
        lambda: b.drain(b.shahihooks_enqueue(), setups[best], env, "shahihooks"),
        "deliveries/s",
    )
    events_workers = [[*w, "-E"] for w in setups[best]]
    ours_e = b.repeat(
        f"shahihooks with task events ({best} -E)",
        lambda: b.drain(b.shahihooks_enqueue(), events_workers, env, "shahihooks"),
        "deliveries/s",
    )
    round_trips(b, setups[best], env)
    emit_figures(b)
    memory(b, prefork2, setups[best][0], env)
    ratio(b, "shahihooks / baseline N", ours["median"] / base_n["median"], 1.0)
    ratio(b, "shahihooks / baseline C", ours["median"] / base_c["median"], 0.75)
    ratio(b, "task events cost (with -E / without)", ours_e["median"] / ours["median"], None)
    (ROOT / "bench-results.json").write_text(json.dumps(b.results, indent=2))
    print(f"\nwritten: {ROOT / 'bench-results.json'}")
    return b.results


def ratio(b: Bench, name: str, value: float, target: float | None) -> None:
    b.results.setdefault("ratios", {})[name] = value
    goal = f"  (target ≥ {target:g}: {'met' if value >= target else 'MISSED'})" if target else ""
    print(f"  {name:<44} {value:>10.2f}x{goal}", flush=True)


def receiver_ceiling(b: Bench) -> None:
    """How fast the receiver answers keep-alive POSTs from 4 client processes."""
    script = (
        "import http.client,sys,time\n"
        f"c=http.client.HTTPConnection('127.0.0.1',{b.http_port});n=0;t=time.monotonic()\n"
        "while time.monotonic()-t<3:\n"
        " c.request('POST','/ceiling',body=b'x'*1000);c.getresponse().read();n+=1\n"
        "print(n)\n"
    )
    procs = [subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE) for _ in range(4)]
    total = sum(int(p.communicate()[0]) for p in procs)
    b.results["receiver_ceiling_per_s"] = total / 3
    print(
        f"  {'receiver ceiling (4 clients, keep-alive)':<44} {total / 3:>10.1f} requests/s",
        flush=True,
    )


def round_trips(b: Bench, workers: list[list[str]], env: dict[str, str]) -> None:
    """Redis commands per delivery, from INFO commandstats, split ours / Celery's."""
    b.redis.flushall()
    b.redis.config_resetstat()
    n = min(b.n, 5000)
    saved, b.n = b.n, n
    b.drain(b.shahihooks_enqueue(count=n), workers, env, "shahihooks")
    b.n = saved
    stats = b.redis.info("commandstats")
    per = {k.removeprefix("cmdstat_"): v["calls"] / n for k, v in stats.items()}
    # Our own client calls: the Lua steps (emit, begin, finish) and the endpoint read at emit.
    # Commands run inside a script are listed by Redis too, but cost no round trip.
    ours = {k: per.get(k, 0.0) for k in ("evalsha", "eval", "hvals", "script|load")}
    in_scripts = {
        "get",
        "set",
        "hmget",
        "hget",
        "incr",
        "expire",
        "xadd",
        "hincrby",
        "zadd",
        "hset",
        "del",
        "exists",
        "pttl",
        "lpush",
    }  # lpush: emit's push of its tasks
    celery = {k: v for k, v in per.items() if k not in ours and k not in in_scripts and v}
    b.results["round_trips_per_delivery"] = {
        "ours": ours,
        "celery_and_kombu": celery,
        "ours_total": sum(ours.values()),
    }
    print(
        f"  {'our Redis round trips per delivery':<44} {sum(ours.values()):>10.2f} "
        f"({', '.join(f'{k} {v:.2f}' for k, v in ours.items() if v)}; target ≤ 3)"
    )
    print(
        f"  {'Celery/kombu commands per delivery':<44} {sum(celery.values()):>10.2f} "
        f"({', '.join(f'{k} {v:.2f}' for k, v in sorted(celery.items()))})",
        flush=True,
    )


def emit_figures(b: Bench) -> None:
    """emit() to 10 endpoints vs a loop of plain apply_async, nothing consuming."""
    import shahihooks
    from bench import naive

    urls = [f"http://127.0.0.1:{b.http_port}/hook{i}" for i in range(10)]
    emits = max(200, b.n // 10)

    def ours() -> tuple[float, list[float]]:
        b.redis.flushall()
        b.configure_shahihooks(urls)
        lat = []
        start = time.perf_counter()
        for i in range(emits):
            t = time.perf_counter()
            shahihooks.emit("ticket.created", {**DATA_1KB, "ticket_id": i})
            lat.append(time.perf_counter() - t)
        return emits * 10 / (time.perf_counter() - start), lat

    def plain() -> tuple[float, list[float]]:
        b.redis.flushall()
        naive.app.conf.broker_url = b.redis_url
        url = urls[0]
        lat = []
        start = time.perf_counter()
        for i in range(emits * 10):
            t = time.perf_counter()
            naive.send.apply_async((url, "ticket.created", {**DATA_1KB, "ticket_id": i}))
            lat.append(time.perf_counter() - t)
        return emits * 10 / (time.perf_counter() - start), lat

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000

    rows: dict[str, list[tuple[float, list[float]]]] = {"ours": [], "plain": []}
    for _ in range(b.runs):
        rows["ours"].append(ours())
        rows["plain"].append(plain())
    for name, label in (("ours", "emit to 10 endpoints"), ("plain", "plain apply_async loop")):
        rates = [r for r, _ in rows[name]]
        lat = [x for _, ls in rows[name] for x in ls]
        b.results[f"emit_{name}"] = {
            "deliveries_per_s": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99),
        }
        print(
            f"  {label:<44} {statistics.median(rates):>10.1f} enqueued/s  "
            f"(min {min(rates):.1f}, max {max(rates):.1f}; one call p50 "
            f"{pct(lat, 0.5):.2f} ms, p99 {pct(lat, 0.99):.2f} ms)",
            flush=True,
        )
    o, p = b.results["emit_ours"], b.results["emit_plain"]
    ratio(b, "emit fan-out / apply_async loop", o["deliveries_per_s"] / p["deliveries_per_s"], 2.5)
    b.results.setdefault("ratios", {})["emit p99 / apply_async p99"] = o["p99_ms"] / p["p99_ms"]
    print(
        f"  {'emit p99 / apply_async p99':<44} {o['p99_ms'] / p['p99_ms']:>10.2f}x"
        f"  (target ≤ 3: {'met' if o['p99_ms'] / p['p99_ms'] <= 3 else 'MISSED'})",
        flush=True,
    )
    b.redis.flushall()


def memory(b: Bench, naive_args: list[str], ours_args: list[str], env: dict[str, str]) -> None:
    """Worker RSS per delivery held in a countdown (each failed once, retry in an hour)."""
    held = min(10_000, b.n)

    def measure(args: list[str], enqueue: Callable[[], None], extra: dict[str, str]) -> float:
        b.redis.flushall()
        b.receiver("/_reset")
        proc = b.worker(args, {**env, **extra})
        try:
            time.sleep(4)  # started and idle
            before = rss_kb(proc.pid)
            enqueue()
            wait(
                lambda: (b.receiver("/_stats") or {}).get("failed", 0) >= held,
                600,
                "failures",
                every=0.1,
            )
            wait(lambda: b.redis.llen("naive") + b.redis.llen("shahihooks") == 0, 60, "queue")
            time.sleep(2)
            return (rss_kb(proc.pid) - before) * 1024 / held
        finally:
            b.halt(proc)

    naive_per = statistics.median(
        measure(naive_args, b.naive_enqueue("/fail", held), {"BENCH_COUNTDOWN": "3600"})
        for _ in range(b.runs)
    )
    ours_per = statistics.median(
        measure(
            ours_args,
            b.shahihooks_enqueue("/fail", held),
            {"SHAHIHOOKS_RETRY_SCHEDULE": "3600", "SHAHIHOOKS_URLS": ""},
        )
        for _ in range(b.runs)
    )
    b.results["held_retry_bytes"] = {"naive": naive_per, "ours": ours_per}
    print(f"  {'held retry, naive task (1 KB body)':<44} {naive_per / 1024:>10.1f} KB each")
    print(f"  {'held retry, shahihooks (1 KB body)':<44} {ours_per / 1024:>10.1f} KB each")
    ratio(b, "held retry memory / naive", ours_per / naive_per, None)
    print(f"  {'':<44} (target ≤ 0.5: {'met' if ours_per / naive_per <= 0.5 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 run of 2,000: a smoke test")
    run(parser.parse_args().quick)
