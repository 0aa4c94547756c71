"""`make bench`: shahihooks against baselines run at the same worker setups, in one process.

Everything runs locally: a private redis-server, an asyncio receiver (its own ceiling is
reported), Celery workers as subprocesses. Throughput: baselines N (the naive task) and C
(no-op tasks), shahihooks now (S) and at the commit before waits moved to Redis (S0), the
peer django-webhook (P) and shahihooks with RabbitMQ as its broker (SR), each at every
setup, rounds interleaved; the table shows every setup and each system's best against the
others' best, with what the Redis spent per delivery (CPU, commands) for each. Then task
events' cost, Redis commands per delivery, a profile of the state's Lua scripts, waiting deliveries
(worker RSS, Redis bytes, the mover's rate), backlog depth, recovery after SIGKILL and
emit's fan-out, and endpoint isolation (a healthy endpoint's latency alone and beside one
that hangs, with one worker; the slots the hanging one holds). Ratios are between figures
of the same run, because absolute numbers drift on a shared machine. Results also go to a
JSON file beside the table.

    python -m bench.run [--quick] [--setups "threads 1x16,prefork 2"] [--only waiting,...]
    python -m bench.run --report bench-results.json     # the tables of a saved run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import commands, emitting, isolation, luaprofile, recovery, throughput, waiting
from bench.report import report
from bench.systems import (
    Naive,
    Noop,
    Peer,
    Setup,
    Shahihooks,
    ShahihooksRabbit,
    System,
    Unavailable,
)
from bench.world import PY, ROOT, World

# The core before waiting deliveries moved to Redis (issue #10): the old core with the php
# body style, which the new core has too.
BEFORE = "9e4e7e7"
SETUPS = "threads 1x16,threads 2x16,threads 3x8,prefork 2,prefork 4"
QUICK_SETUPS = "threads 1x16,threads 2x8"
WAITING_SETUP = Setup("threads", 2, 16)  # two processes: 100,000 failed attempts go faster
SECTIONS = (
    "throughput",
    "events",
    "commands",
    "luaprofile",
    "waiting",
    "backlog",
    "recovery",
    "emit",
    "isolation",
)


@dataclass(frozen=True)
class Sizes:
    n: int  # deliveries per throughput cell
    rounds: int
    peer_n: int  # the peer is slow: a tenth of n per cell (its rate, not its total, counts)
    waiting: int  # retries waiting at once
    naive_held: int
    warm: int  # deliveries a worker sends before its RSS is taken as the baseline
    backlog_deep: int
    backlog_k: int
    recovery: int
    emits: int
    commands: int
    isolation: int  # emits to each endpoint, alone and beside the hanging one
    isolation_watch_s: float  # how long the hanging endpoint's slots are sampled
    luaprofile: int  # deliveries whose scripts are profiled

    @classmethod
    def of(cls, quick: bool, n: int | None, rounds: int | None) -> Sizes:
        if quick:
            n = n or 1000
            return cls(n, rounds or 1, n, 2000, 1000, 1000, 2000, 200, 300, 100, n, 50, 3, n)
        n = n or 20_000
        return cls(
            n,
            rounds or 2,
            n // 10,
            100_000,
            10_000,
            2000,
            10_000,
            1000,
            1000,
            2000,
            5000,
            300,
            40,
            min(n, 5000),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--n", type=int, help="deliveries per throughput cell")
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--setups", help=f"comma-separated (default: {SETUPS})")
    parser.add_argument("--systems", default="N,C,S,S0,P,SR", help="from N,C,S,S0,P,SR")
    parser.add_argument("--before", default=BEFORE, help="the commit S0 runs ('' for none)")
    parser.add_argument("--only", help=f"sections, from {','.join(SECTIONS)}")
    parser.add_argument("--json", default=str(ROOT / "bench-results.json"), help="results file")
    parser.add_argument("--report", metavar="JSON", help="print the tables of a saved run, only")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return
    sizes = Sizes.of(args.quick, args.n, args.rounds)
    chosen = args.setups or (QUICK_SETUPS if args.quick else SETUPS)
    setups = [Setup.parse(s) for s in chosen.split(",") if s.strip()]
    sections = args.only.split(",") if args.only else list(SECTIONS)
    keys = args.systems.split(",")
    if not args.before:
        keys = [k for k in keys if k != "S0"]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    results = run(sizes, setups, keys, args.before, sections, args.quick, Path(args.json))
    print(report(results))
    print(f"\nwritten: {args.json}")


def run(
    sizes: Sizes,
    setups: list[Setup],
    keys: list[str],
    before: str,
    sections: list[str],
    quick: bool,
    out: Path,
) -> dict[str, Any]:
    """Each section in turn; one that fails is reported and the others still run. The JSON
    file is written after every section, so a long run interrupted keeps what it measured."""
    world = World()
    world.start()
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "quick": quick,
        "machine": machine(),
        "sizes": sizes.__dict__,
        "setups": [s.label for s in setups],
        "errors": {},
    }
    try:
        results["receiver_ceiling_per_s"] = receiver_ceiling(world)
        run_ = Run(world, sizes, setups, available(world, keys, before, results), results)
        for name in sections:
            try:
                results[name] = getattr(run_, name)()
            except Exception as exc:  # reported; the next section still runs
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name} FAILED: {exc}", flush=True)
            results["seconds"] = time.monotonic() - started
            out.write_text(json.dumps(results, indent=2))
    finally:
        world.stop()
    return results


@dataclass
class Run:
    """The sections of one run, each returning its results."""

    world: World
    sizes: Sizes
    setups: list[Setup]
    systems: list[System]
    results: dict[str, Any]

    def throughput(self) -> dict[str, Any]:
        sizes, setups = self.sizes, self.setups
        print(
            f"\nthroughput: {sizes.n:,} per cell ({sizes.peer_n:,} for the peer), "
            f"{sizes.rounds} round(s), setups {', '.join(s.label for s in setups)}"
        )
        cells = throughput.interleaved(
            self.world, self.systems, setups, sizes.rounds, sizes.n, {"P": sizes.peer_n}
        )
        return throughput.summary(cells, [s.key for s in self.systems], setups)

    @property
    def best(self) -> Setup:
        """shahihooks' best setup in this run; without a throughput section, the first."""
        found = self.results.get("throughput", {}).get("best", {}).get("S")
        return Setup.parse(found["setup"]) if found else self.setups[0]

    def events(self) -> dict[str, Any]:
        print(f"\ntask events (-E) at shahihooks' best setup, {self.best.label}:")
        rounds, n = self.sizes.rounds, self.sizes.n
        return throughput.events_cost(self.world, Shahihooks(), self.best, rounds, n)

    def commands(self) -> dict[str, Any]:
        print(f"\nRedis commands per delivery at {self.best.label}:")
        return {
            k: commands.per_delivery(self.world, s, self.best, self.sizes.commands)
            for k, s in (("S", Shahihooks()), ("N", Naive()))
        }

    def luaprofile(self) -> dict[str, Any]:
        n = self.sizes.luaprofile
        print(f"\nLua profile of the state scripts, {n:,} deliveries driven one call at a time:")
        return luaprofile.measure(self.world, n)

    def waiting(self) -> dict[str, Any]:
        world, sizes, setup = self.world, self.sizes, WAITING_SETUP
        print(f"\nwaiting deliveries ({sizes.waiting:,} retries an hour away):")
        return {
            "ours": waiting.ours(world, sizes.waiting, setup, sizes.warm),
            "mover": waiting.mover_rate(world, sizes.waiting),
            "naive": waiting.naive(world, sizes.naive_held, setup, sizes.warm),
            "backlog": waiting.backlog_redis(world, sizes.backlog_deep),
        }

    def backlog(self) -> dict[str, Any]:
        print("\nbacklog depth:")
        depths = (10, self.sizes.backlog_deep)
        return commands.backlog_depths(self.world, depths, self.sizes.backlog_k)

    def recovery(self) -> dict[str, Any]:
        print("\nrecovery after SIGKILL (default timings):")
        return recovery.after_sigkill(self.world, self.sizes.recovery)

    def emit(self) -> dict[str, Any]:
        print("\nemit fan-out:")
        return emitting.fan_out(self.world, self.sizes.rounds, self.sizes.emits)

    def isolation(self) -> dict[str, Any]:
        """Its own worker setup, the default one, for both of its measurements."""
        sizes = self.sizes
        print(
            f"\nendpoint isolation at {isolation.SETUP.label} (timeout 15 s, rate limit off): "
            f"{sizes.isolation} emits alone, then beside an endpoint that never answers"
        )
        return isolation.measure(self.world, sizes.isolation, sizes.isolation_watch_s)


def available(world: World, keys: list[str], before: str, results: dict[str, Any]) -> list[System]:
    known: dict[str, System] = {
        "N": Naive(),
        "C": Noop(),
        "S": Shahihooks(),
        "S0": Shahihooks(before),
        "P": Peer(),
        "SR": ShahihooksRabbit(),
    }
    systems, missing = [], {}
    for key in keys:
        try:
            known[key].prepare(world)
            systems.append(known[key])
        except Unavailable as exc:
            missing[key] = str(exc)
            print(f"  {key} not run: {exc}")
    results["systems"] = {s.key: s.name for s in systems}
    results["systems_not_run"] = missing
    return systems


def receiver_ceiling(world: World) -> float:
    """How fast the receiver answers keep-alive POSTs from 4 client processes (3 s)."""
    script = (
        "import http.client,sys,time\n"
        f"c=http.client.HTTPConnection('127.0.0.1',{world.http_port});n=0;t=time.monotonic()\n"
        "while time.monotonic()-t<3:\n"
        " c.request('POST','/ceiling',body=b'x'*1000);c.getresponse().read();n+=1\n"
        "print(n)\n"
    )
    procs = [subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE) for _ in range(4)]
    return sum(int(p.communicate()[0]) for p in procs) / 3


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_at_start": load,
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


if __name__ == "__main__":
    main()
