"""Throughput: every system at every setup, rounds interleaved, and best against best.

One cell: an empty Redis, `n` items enqueued with no worker running, then the setup's
workers started; the rate is counted from the first 2xx the receiver answers to the last
(deliveries), or from the first message consumed to the queue's end (no-op tasks), so
enqueueing and worker start-up are outside it. Order: round 1 = setup A: N, C, S…; setup B:
N, C, S…; then round 2 the same, so drift on a shared machine touches every system alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.systems import Setup, System
from bench.world import Stalled, World, wait, wait_progress


@dataclass
class Cells:
    """Rates by system key and setup label, one per round."""

    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, system: str, setup: str, rate: float) -> None:
        self.rates.setdefault(system, {}).setdefault(setup, []).append(rate)

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
    world.fresh()
    system.enqueue(world, n, "/hook")
    env = system.env(world)
    procs = [world.spawn(argv, env, system.cwd) for argv in system.workers(setup, extra)]
    try:
        if system.at_receiver:
            wait_progress(lambda: int(world.received().get("count", 0)), n, system.name)
            got = world.received()
            return (n - 1) / (got["last"] - got["first"])
        start = wait(
            lambda: world.pending(system.queue) < n and time.monotonic(), 60, "a first task", 0.002
        )
        wait_progress(lambda: n - world.pending(system.queue), n, system.name, every=0.005)
        return n / (time.monotonic() - start)
    finally:
        for proc in procs:
            world.halt(proc)


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
                    rate = drain(world, system, setup, size)
                except (Stalled, RuntimeError) as exc:
                    cells.fail(system.key, setup.label, str(exc))
                    print(f"  round {r}  {setup.label:<14} {system.key:<3} FAILED: {exc}")
                    continue
                cells.add(system.key, setup.label, rate)
                print(
                    f"  round {r}  {setup.label:<14} {system.key:<3} {rate:>8.1f} {system.unit}",
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
