"""Throughput: every system at every setup, rounds interleaved, and best against best.

One cell: an empty Redis, `n` items enqueued with no worker running, then the setup's
workers started; the rate is counted from the first 2xx the receiver answers to the last
(deliveries), or from the first message consumed to the queue's end (no-op tasks), so
enqueueing and worker start-up are outside it. Order: round 1 = setup A: N, C, S…; setup B:
N, C, S…; then round 2 the same, so drift on a shared machine touches every system alike.

Each cell also reads what the bench's Redis spent (bench/redisstats.py), alone with the
system: on its enqueue (emit) and on its delivering (workers started to workers stopped).
For S and SR that Redis holds shahihooks' state (and S's broker); for N, its broker.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import redisstats
from bench.systems import Setup, System
from bench.world import Stalled, World, wait, wait_progress
from shahihooks.keys import Keys


@dataclass
class Cells:
    """Rates by system key and setup label, one per round."""

    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # what the Redis spent, per cell: {"enqueue": totals or None, "deliver": totals}
    redis: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(
        self, system: str, setup: str, rate: float, redis: dict[str, Any] | None = None
    ) -> None:
        self.rates.setdefault(system, {}).setdefault(setup, []).append(rate)
        if redis is not None:
            self.redis.setdefault(system, {}).setdefault(setup, []).append(redis)

    def fail(self, system: str, setup: str, why: str) -> None:
        self.failures.setdefault(system, {}).setdefault(setup, []).append(why)

    def mean(self, system: str, setup: str) -> float | None:
        values = self.rates.get(system, {}).get(setup)
        return statistics.fmean(values) if values else None

    def best(self, system: str) -> tuple[str, float] | None:
        means = {s: m for s in self.rates.get(system, {}) if (m := self.mean(system, s))}
        if not means:
            return None
        label = max(means, key=means.__getitem__)
        return label, means[label]


def drain(world: World, system: System, setup: Setup, n: int, extra: tuple[str, ...] = ()) -> float:
    """One cell: `n` items of `system` through `setup`'s workers; items per second."""
    return measured(world, system, setup, n, extra)[0]


def measured(
    world: World, system: System, setup: Setup, n: int, extra: tuple[str, ...] = ()
) -> tuple[float, dict[str, Any]]:
    """One cell's rate, and what the Redis spent on its enqueue (None when the queue was a
    saved one, restored) and on its delivering, to the last worker stopped."""
    world.fresh()
    before = redisstats.read(world.redis)
    system.enqueue(world, n, "/hook")
    enqueued = redisstats.read(world.redis)
    env = system.env(world)
    procs = [world.spawn(argv, env, system.cwd) for argv in system.workers(setup, extra)]
    try:
        rate = _rate(world, system, n)
    finally:
        for proc in procs:
            world.halt(proc)
    spent = {
        "enqueue": None if system.replayed else redisstats.between(before, enqueued, n),
        "deliver": redisstats.between(enqueued, redisstats.read(world.redis), n),
    }
    if system.holds != "broker":
        # more than one log entry per delivery: some were deferred (the endpoint's limit of
        # attempts in flight) or retried, and their Redis work counts here too
        spent["log_entries"] = int(world.redis.xlen(Keys().log))
    return rate, spent


def _rate(world: World, system: System, n: int) -> float:
    if system.at_receiver:
        wait_progress(lambda: int(world.received().get("count", 0)), n, system.name)
        got = world.received()
        return (n - 1) / (got["last"] - got["first"])
    start = wait(
        lambda: world.pending(system.queue) < n and time.monotonic(), 60, "a first task", 0.002
    )
    wait_progress(lambda: n - world.pending(system.queue), n, system.name, every=0.005)
    return n / (time.monotonic() - start)


def interleaved(
    world: World,
    systems: Sequence[System],
    setups: Sequence[Setup],
    rounds: int,
    n: int,
    n_for: dict[str, int] | None = None,
) -> Cells:
    cells = Cells()
    for r in range(1, rounds + 1):
        for setup in setups:
            for system in systems:
                size = (n_for or {}).get(system.key, n)
                try:
                    rate, spent = measured(world, system, setup, size)
                except (Stalled, RuntimeError) as exc:
                    cells.fail(system.key, setup.label, str(exc))
                    print(f"  round {r}  {setup.label:<14} {system.key:<3} FAILED: {exc}")
                    continue
                cells.add(system.key, setup.label, rate, {**spent, "holds": system.holds})
                cpu = spent["deliver"]["cpu_us"] / size
                print(
                    f"  round {r}  {setup.label:<14} {system.key:<3} {rate:>8.1f} {system.unit}"
                    f"  (Redis CPU {cpu:.0f} µs each delivering)",
                    flush=True,
                )
    return cells


def events_cost(world: World, system: System, setup: Setup, rounds: int, n: int) -> dict[str, Any]:
    """The same setup without and with `-E` (task events for Flower), interleaved."""
    plain: list[float] = []
    events: list[float] = []
    for r in range(1, rounds + 1):
        plain.append(drain(world, system, setup, n))
        events.append(drain(world, system, setup, n, ("-E",)))
        print(f"  round {r}  {setup.label} without -E {plain[-1]:.1f}, with -E {events[-1]:.1f}")
    without, with_e = statistics.fmean(plain), statistics.fmean(events)
    return {
        "setup": setup.label,
        "without": plain,
        "with": events,
        "cost": 1 - with_e / without,
    }


def pairs(keys: Sequence[str]) -> list[tuple[str, str]]:
    """The ratios reported: S to every other system; S0 (before) and P to the baselines;
    SR (RabbitMQ broker) to S (the Redis broker) and N."""
    out = [("S", k) for k in keys if k != "S" and "S" in keys]
    out += [(a, b) for a in ("S0", "P") for b in ("N", "C") if a in keys and b in keys]
    out += [("SR", b) for b in ("S", "N") if "SR" in keys and b in keys]
    return out


def summary(cells: Cells, keys: Sequence[str], setups: Sequence[Setup]) -> dict[str, Any]:
    """Per-setup means and ratios, each system's best setup, and best against best."""
    per_setup: dict[str, dict[str, Any]] = {}
    for setup in setups:
        row: dict[str, Any] = {k: cells.mean(k, setup.label) for k in keys}
        for a, b in pairs(keys):
            if row.get(a) and row.get(b):
                row[f"{a}/{b}"] = row[a] / row[b]
        per_setup[setup.label] = row
    best = {k: found for k in keys if (found := cells.best(k))}
    vs = {f"{a}/{b}": best[a][1] / best[b][1] for a, b in pairs(keys) if a in best and b in best}
    return {
        "rates": cells.rates,
        "failures": cells.failures,
        "per_setup": per_setup,
        "best": {k: {"setup": s, "rate": r} for k, (s, r) in best.items()},
        "best_vs_best": vs,
        "redis": cells.redis,
        "redis_per_delivery": redis_summary(cells.redis),
    }


# the Redis CPU ratios reported: shahihooks' state Redis against the naive task's broker
REDIS_PAIRS = (("SR", "N"), ("S", "N"))


def redis_summary(spent: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per system, every cell together: what its Redis spent per item on the enqueue (where
    measured), on the delivering, and both (`cpu_us`); then the ratios of REDIS_PAIRS, over
    all setups and at each."""
    out: dict[str, Any] = {}
    for key, by_setup in spent.items():
        cells = [c for cs in by_setup.values() for c in cs]
        out[key] = one_system(cells)
        # the enqueue measured in any cell stands for every setup (N's queue is restored)
        enqueue_us = out[key]["enqueue"]["cpu_us"] if out[key]["enqueue"] else 0.0
        out[key]["by_setup"] = {
            label: one_system(cs)["deliver"]["cpu_us"] + enqueue_us
            for label, cs in by_setup.items()
        }
    ratios: dict[str, Any] = {}
    for a, b in REDIS_PAIRS:
        if a in out and b in out:
            ratios[f"{a}/{b}"] = out[a]["cpu_us"] / out[b]["cpu_us"]
            ratios[f"{a}/{b} delivering"] = (
                out[a]["deliver"]["cpu_us"] / out[b]["deliver"]["cpu_us"]
            )
            shared = set(out[a]["by_setup"]) & set(out[b]["by_setup"])
            ratios[f"{a}/{b} by setup"] = {
                s: out[a]["by_setup"][s] / out[b]["by_setup"][s] for s in sorted(shared)
            }
    return {"systems": out, "ratios": ratios}


def one_system(cells: list[dict[str, Any]]) -> dict[str, Any]:
    holds = cells[0].get("holds", "broker")
    deliver = redisstats.merged([c["deliver"] for c in cells])
    enqueue = redisstats.merged([c["enqueue"] for c in cells if c.get("enqueue")])
    assert deliver is not None
    per_deliver = redisstats.per_item(deliver, holds)
    per_enqueue = redisstats.per_item(enqueue, holds) if enqueue else None
    whole = redisstats.plus(deliver, enqueue) if enqueue else deliver
    logged = [c["log_entries"] for c in cells if "log_entries" in c]
    return {
        "holds": holds,
        "log_entries": sum(logged) / deliver["n"] if logged else None,
        "enqueue": per_enqueue,
        "deliver": per_deliver,
        "whole": redisstats.per_item(whole, holds),
        "cpu_us": per_deliver["cpu_us"] + (per_enqueue["cpu_us"] if per_enqueue else 0.0),
    }


def table(result: dict[str, Any], keys: Sequence[str], setups: Sequence[Setup]) -> str:
    """The throughput table as text: a row per setup, then best vs best."""
    ratios = [f"S/{k}" for k in keys if k != "S" and "S" in keys]
    head = (
        f"  {'setup':<14}" + "".join(f"{k:>9}" for k in keys) + "".join(f"{r:>8}" for r in ratios)
    )
    lines = [head]
    for setup in setups:
        row = result["per_setup"][setup.label]
        cells = "".join(f"{row[k]:>9.0f}" if row.get(k) else f"{'-':>9}" for k in keys)
        rs = "".join(f"{row[r]:>7.2f}x" if row.get(r) else f"{'-':>8}" for r in ratios)
        lines.append(f"  {setup.label:<14}{cells}{rs}")
    best = result["best"]
    cells = "".join(f"{best[k]['rate']:>9.0f}" if k in best else f"{'-':>9}" for k in keys)
    rs = "".join(
        f"{result['best_vs_best'][r]:>7.2f}x" if r in result["best_vs_best"] else f"{'-':>8}"
        for r in ratios
    )
    lines.append(f"  {'best vs best':<14}{cells}{rs}")
    lines.append(
        "  best setups: " + ", ".join(f"{k} {best[k]['setup']}" for k in keys if k in best)
    )
    return "\n".join(lines)


def scaling(result: dict[str, Any], keys: Sequence[str], setups: Sequence[Setup]) -> str:
    """Rate by worker processes, for the threads setups with the same threads per process."""
    by_threads: dict[int, list[Setup]] = {}
    for s in setups:
        if s.pool == "threads":
            by_threads.setdefault(s.threads, []).append(s)
    lines = []
    for threads, group in sorted(by_threads.items()):
        if len(group) < 2:
            continue
        group = sorted(group, key=lambda s: s.processes)
        base = result["per_setup"][group[0].label]
        for s in group:
            row = result["per_setup"][s.label]
            parts = [
                f"{k} {row[k]:.0f} ({row[k] / base[k]:.2f}x)"
                for k in keys
                if row.get(k) and base.get(k)
            ]
            lines.append(f"  {s.processes} process(es) x {threads} threads: " + ", ".join(parts))
    return "\n".join(lines)
