"""The state over a Redis Cluster (issue #23): `python -m bench.scale --cluster 1,2,3`.

For a local cluster of each number of primaries (bench/cluster.py, started fresh for each
cell, stopped after), shahihooks with SHAHIHOOKS_REDIS_CLUSTER=1 and RabbitMQ as the broker
delivers n deliveries spread over two endpoints of each of the 16 shards (so every primary
gets its share); and, in the same run, SR: the state on one plain redis-server (the bench's
own), the same endpoints and workers. Around each whole cell (emit, workers started, the
last worker stopped) each primary's `INFO cpu` and `INFO commandstats` are read
(bench/redisstats.py): its CPU µs and its FCALLs per delivery.

What one Redis core can carry is 1e6 / (µs per delivery over all primaries); a cluster with
a core per primary is bounded by its busiest primary: 1e6 / (that primary's µs per
delivery). On a machine with fewer cores than processes, deliveries/s is what the shared
cores gave, not the ceiling.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

import redis

from bench import redisstats
from bench.cluster import Cluster, shards_of
from bench.systems import Setup, ShahihooksRabbit, emit_urls
from bench.world import World, wait_progress
from shahihooks.contract import load_library
from shahihooks.keys import url_tag
from shahihooks.shards import N_SHARDS, shard_of_tag

PER_SHARD = 2  # endpoints per shard: 32 endpoints


class ClusterState(ShahihooksRabbit):
    """shahihooks with the state on the Redis Cluster that `url` names a node of."""

    key, name = "SC", "shahihooks, Redis Cluster state, RabbitMQ broker"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.queue = f"bench-sc-{os.getpid()}"

    def env(self, world: World) -> dict[str, str]:
        env = super().env(world)
        env.update(SHAHIHOOKS_REDIS_URL=self.url, SHAHIHOOKS_REDIS_CLUSTER="1")
        return {**env, "BENCH_NO_REPLICA_WAIT": "1"}  # no replica to wait for (bench.emitter)


def spread_urls(world: World, per_shard: int = PER_SHARD) -> list[str]:
    """`per_shard` receiver URLs for each shard (the shard is the URL's, so it is chosen)."""
    found: dict[int, list[str]] = {k: [] for k in range(N_SHARDS)}
    i = 0
    while any(len(urls) < per_shard for urls in found.values()):
        url = world.url(f"/c{i}")
        mine = found[shard_of_tag(url_tag(url))]
        if len(mine) < per_shard:
            mine.append(url)
        i += 1
    return [u for k in range(N_SHARDS) for u in found[k]]


def cell(
    world: World,
    system: ShahihooksRabbit,
    setup: Setup,
    urls: list[str],
    emits: int,
    servers: Sequence[redis.Redis],
) -> tuple[float, list[dict[str, Any]]]:
    """`emits` emits to `urls` delivered by `setup`'s workers: deliveries/s, and what each
    of `servers` spent from before the emit to the last worker stopped."""
    n = emits * len(urls)
    world.fresh()
    system.purge()
    for server in servers:  # loaded before the reading: a fresh node would load it in the cell
        load_library(server)
    before = [redisstats.read(s) for s in servers]
    emit_urls(world, system, emits, urls)
    env = {**system.env(world), "SHAHIHOOKS_URLS": " ".join(urls)}
    procs = [world.spawn(argv, env, system.cwd) for argv in system.workers(setup)]
    try:
        wait_progress(lambda: int(world.received().get("count", 0)), n, system.name)
        got = world.received()
        rate = (n - 1) / (got["last"] - got["first"])
    finally:
        for proc in procs:
            world.halt(proc)
    after = [redisstats.read(s) for s in servers]
    return rate, [redisstats.between(b, a, n) for b, a in zip(before, after, strict=True)]


def measure(
    world: World, masters: Sequence[int], n: int, rounds: int, setup: Setup
) -> dict[str, Any]:
    """Every configuration in every round (SR first, then each cluster), then the summary."""
    urls = spread_urls(world)
    emits = math.ceil(n / len(urls))
    single = ShahihooksRabbit()
    single.prepare(world)  # no RabbitMQ: Unavailable, reported by the caller
    spent: dict[str, tuple[list[float], list[list[dict[str, Any]]]]] = {}
    for r in range(1, rounds + 1):
        rate, used = cell(world, single, setup, urls, emits, [world.redis])
        keep(spent, "single", rate, used, r)
        for m in masters:
            cluster = Cluster(m)
            try:
                cluster.start()
                nodes = [cluster.node(p) for p in cluster.ports]
                rate, used = cell(world, ClusterState(cluster.url), setup, urls, emits, nodes)
            finally:
                cluster.close()
            keep(spent, str(m), rate, used, r)
    return summary(spent, emits * len(urls), len(urls), setup, rounds)


def keep(
    spent: dict[str, tuple[list[float], list[list[dict[str, Any]]]]],
    key: str,
    rate: float,
    used: list[dict[str, Any]],
    r: int,
) -> None:
    rates, cells = spent.setdefault(key, ([], []))
    rates.append(rate)
    cells.append(used)
    us = " + ".join(f"{u['cpu_us'] / u['n']:.0f}" for u in used)
    label = "one Redis (SR)" if key == "single" else f"cluster of {key}"
    print(f"  round {r}  {label:<16} {rate:>8.1f} deliveries/s  (Redis CPU µs each: {us})")


def summary(
    spent: dict[str, tuple[list[float], list[list[dict[str, Any]]]]],
    n: int,
    endpoints: int,
    setup: Setup,
    rounds: int,
) -> dict[str, Any]:
    """Each configuration's rate and per-primary figures, the rounds together; the ratio of
    each total to the single Redis's."""
    out: dict[str, Any] = {}
    for key, (rates, cells) in spent.items():
        by_master = [redisstats.merged([c[i] for c in cells]) for i in range(len(cells[0]))]
        out[key] = {
            "rate": statistics.fmean(rates),
            "rates": rates,
            "masters": [master(m) for m in by_master if m is not None],
        }
        out[key]["shards"] = [list(range(N_SHARDS))] if key == "single" else shards_of(int(key))
        out[key].update(ceilings([m["cpu_us"] for m in out[key]["masters"]]))
    if "single" in out:
        for entry in out.values():
            entry["vs_single"] = entry["total_us"] / out["single"]["total_us"]
    return {
        "n": n,
        "endpoints": endpoints,
        "setup": setup.label,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "configurations": out,
    }


def master(total: dict[str, Any]) -> dict[str, Any]:
    """One server's figures per delivery (redisstats.per_item), its FCALLs picked out."""
    per = redisstats.per_item(total, "state")
    calls = per["by_command"]
    per["fcalls"] = sum(calls[k]["calls"] for k in ("fcall", "fcall_ro") if k in calls)
    return per


def ceilings(us_by_master: Sequence[float]) -> dict[str, float]:
    """µs per delivery over all primaries; deliveries/s one Redis core carries at that cost;
    and a cluster's ceiling with a core per primary, set by its busiest one."""
    total = sum(us_by_master)
    return {
        "total_us": total,
        "per_core_per_s": 1e6 / total,
        "ceiling_per_s": 1e6 / max(us_by_master),
    }


def table(result: dict[str, Any]) -> str:
    """The configurations as rows, then how to read them."""
    head = (
        f"  {'state':<20}{'deliv./s':>9}  {'Redis CPU µs/delivery':<24}{'total':>7}  "
        f"{'FCALLs/delivery':<20}{'/s per core':>12}{'ceiling/s':>11}{'vs one':>8}"
    )
    lines = [head]
    for key, c in result["configurations"].items():
        label = "one Redis (SR)" if key == "single" else f"cluster, {key} primar"
        label += "" if key == "single" else ("y" if key == "1" else "ies")
        us = " + ".join(f"{m['cpu_us']:.0f}" for m in c["masters"])
        fcalls = " + ".join(f"{m['fcalls']:.2f}" for m in c["masters"])
        ratio = f"{c['vs_single']:.2f}x" if "vs_single" in c else "-"
        lines.append(
            f"  {label:<20}{c['rate']:>9.0f}  {us:<24}{c['total_us']:>7.0f}  {fcalls:<20}"
            f"{c['per_core_per_s']:>12,.0f}{c['ceiling_per_s']:>11,.0f}{ratio:>8}"
        )
    lines += [
        "  (µs and FCALLs by primary, the shards in order; total: over all primaries;",
        "   /s per core = 1e6 / total µs; ceiling/s = 1e6 / the busiest primary's µs, the",
        "   cluster's ceiling with a core per primary; vs one: total µs / the single Redis's)",
        f"  On this {result['cpus']}-core machine the primaries, the workers, the receiver and "
        "RabbitMQ share the cores:",
        "  deliveries/s is not the ceiling; the CPU per delivery per primary is what scales.",
    ]
    return "\n".join(lines)
