"""Waiting deliveries: what they cost a worker and Redis, and how fast the mover moves them.

Waiting means failed once with an hour's retry ahead (SHAHIHOOKS_RETRY_SCHEDULE=3600): the
receiver answers 500 on /fail*. The workers are read from /proc (each process tree's RSS)
cold, after a warm-up of successful deliveries, then each time another tenth is waiting (the
`retrying` counters in Redis); Redis from `INFO memory` before and after, split with
`MEMORY USAGE` by key family. The naive task's held retry (a Celery ETA message kept in the
worker) is measured the same way.

The mover: the hour is made to pass (every due time in the schedule set to now), then one
worker that consumes another queue starts, and its mover's publications are timed as the
deliveries' queue fills.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.systems import Naive, Setup, Shahihooks, System, emit_urls
from bench.world import PY, World, rss_kb, wait, wait_progress
from shahihooks.keys import Keys

KEYS = Keys()
FAN_OUT = 10  # URLs per emit: 100,000 deliveries from 10,000 emits


def settled_rss(pid: int, timeout: float = 20) -> int:
    """RSS once it has stopped moving (start-up or a burst of work is over)."""
    last, deadline = rss_kb(pid), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        now = rss_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def used_memory(world: World) -> int:
    return int(world.redis.info("memory")["used_memory"])


def warmed_up(
    world: World,
    system: System,
    setup: Setup,
    env: dict[str, str],
    warm: int,
    send: Callable[[], object],
) -> tuple[list[subprocess.Popen[bytes]], int, int]:
    """`setup`'s workers started and given `warm` deliveries (`send`): the processes, and
    their RSS cold and once warm and idle."""
    procs = [world.spawn(argv, env) for argv in system.workers(setup)]
    cold = sum(settled_rss(p.pid) for p in procs)
    send()
    wait_progress(lambda: int(world.received().get("count", 0)), warm, "warm-up deliveries")
    wait(lambda: world.pending(system.queue) == 0, 60, "idle workers")
    return procs, cold, sum(settled_rss(p.pid) for p in procs)


def ours(world: World, count: int, setup: Setup, warm: int) -> dict[str, Any]:
    """`count` deliveries waiting for a retry: worker RSS and Redis bytes per delivery."""
    system = Shahihooks()
    world.fresh()
    env = world.env(SHAHIHOOKS_RETRY_SCHEDULE="3600")
    procs, cold, warmed = warmed_up(
        world,
        system,
        setup,
        env,
        warm,
        lambda: emit_urls(world, system, warm // FAN_OUT, fanned(world, "/hook")),
    )
    before = used_memory(world)
    emitter = world.spawn(
        [PY, "-m", "bench.emitter", str(count // FAN_OUT)],
        {**env, "SHAHIHOOKS_URLS": " ".join(fanned(world, "/fail"))},
    )
    samples = sample_rss(procs, lambda: waiting(world), count)
    emitter.wait()
    wait(lambda: world.pending("shahihooks") == 0, 60, "idle workers")
    final = sum(settled_rss(p.pid) for p in procs)
    held = world.pending("shahihooks")  # messages the workers hold while they wait: none
    after = used_memory(world)
    for proc in procs:
        world.halt(proc)
    split = redis_bytes(world)
    return {
        **rss_figures(setup, count, cold, warmed, final, samples),
        "messages_held_by_workers": held,
        "redis_bytes_per_waiting": (after - before) / count,
        "redis_split_bytes_per_waiting": {k: v / count for k, v in split.items()},
        "redis_beyond_body_per_waiting": (after - before - split["bodies"]) / count,
        "body_bytes_each": split["bodies"] / (count // FAN_OUT),
    }


def sample_rss(procs: list[Any], count: Callable[[], int], target: int) -> list[dict[str, Any]]:
    """The workers' RSS each time another tenth of `target` is waiting."""
    samples, start = [], time.monotonic()
    for milestone in [target * i // 10 for i in range(1, 11)]:
        wait_progress(count, milestone, "waiting retries", every=0.02)
        rss = sum(rss_kb(p.pid) for p in procs)
        samples.append({"waiting": count(), "rss_kb": rss, "s": time.monotonic() - start})
    return samples


def rss_figures(
    setup: Setup, count: int, cold: int, warm: int, final: int, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per waiting delivery: against the warmed-up worker, against the cold one, and the
    slope from the first tenth to the end (what one more waiting delivery costs)."""
    first, last = samples[0], samples[-1]
    return {
        "count": count,
        "setup": setup.label,
        "cold_rss_kb": cold,
        "warm_rss_kb": warm,
        "final_rss_kb": final,
        "samples": samples,
        "attempts_per_s": (last["waiting"] - first["waiting"]) / (last["s"] - first["s"]),
        "rss_bytes_per_waiting": (final - warm) * 1024 / count,
        "rss_bytes_per_waiting_vs_cold": (final - cold) * 1024 / count,
        "rss_slope_bytes_per_waiting": (last["rss_kb"] - first["rss_kb"])
        * 1024
        / max(1, last["waiting"] - first["waiting"]),
    }


def fanned(world: World, path: str) -> list[str]:
    return [world.url(f"{path}{i}") for i in range(FAN_OUT)]


def waiting(world: World) -> int:
    return sum(int(v) for v in world.redis.hvals(KEYS.retrying))


def redis_bytes(world: World) -> dict[str, int]:
    """MEMORY USAGE by key family: bodies, delivery records, the schedule, the log..."""
    client = world.redis

    def total(pattern: str) -> int:
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(match=pattern, count=5000):
            pipe.memory_usage(key)
        return sum(int(x or 0) for x in pipe.execute())

    return {
        "bodies": total(KEYS.body("*")),
        "records": total(KEYS.delivery("*")),
        "schedule": int(client.memory_usage(KEYS.schedule, samples=0) or 0),
        "log": int(client.memory_usage(KEYS.log, samples=0) or 0),
        "backlogs": total(KEYS.backlog("*")),
        "stats": total(KEYS.stats("*")),  # type: ignore[arg-type]
    }


def naive(world: World, count: int, setup: Setup, warm: int) -> dict[str, Any]:
    """The naive task's retries held in the worker (Celery ETA messages), per retry."""
    system = Naive()
    world.fresh()
    env = world.env(BENCH_COUNTDOWN="3600")
    procs, cold, warmed = warmed_up(
        world, system, setup, env, warm, lambda: system.enqueue(world, warm, "/hook")
    )
    world.receiver("/_reset")
    system.enqueue(world, count, "/fail")
    samples = sample_rss(procs, lambda: int(world.received().get("failed", 0)), count)
    wait(lambda: world.redis.llen("naive") == 0, 120, "naive retries taken by the workers")
    final = sum(settled_rss(p.pid) for p in procs)
    for proc in procs:
        world.halt(proc)
    return rss_figures(setup, count, cold, warmed, final, samples)


def mover_rate(world: World, count: int) -> dict[str, Any]:
    """With `count` retries waiting (left by `ours`): all made due, their publication timed."""
    client = world.redis
    scheduled = int(client.zcard(KEYS.schedule))
    client.zunionstore(KEYS.schedule, {KEYS.schedule: 0})  # every score x 0: the hour passed
    (argv,) = Shahihooks().workers(Setup("threads", 1, 1), queue="bench-idle")
    proc = world.spawn(argv, world.env())
    try:
        first = wait(lambda: client.llen("shahihooks"), 60, "a first publication", 0.002)
        start = time.monotonic()
        wait_progress(lambda: int(client.llen("shahihooks")), count, "publication", every=0.005)
        took = time.monotonic() - start
    finally:
        world.halt(proc)
    return {
        "count": count,
        "scheduled": scheduled,
        "published_per_s": (count - first) / took if took else None,
        "seconds": took,
    }


def backlog_redis(world: World, count: int) -> dict[str, Any]:
    """`count` deliveries rate-limited into backlogs at emit (no worker): Redis bytes each."""
    world.fresh()
    before = used_memory(world)
    emit_urls(
        world,
        Shahihooks(),
        count // FAN_OUT,
        fanned(world, "/b"),
        env={"SHAHIHOOKS_RATE_LIMIT": "1", "SHAHIHOOKS_BACKLOG_MAX": str(count)},
    )
    after = used_memory(world)
    deferred = sum(backlog_sizes(world))
    split = redis_bytes(world)
    return {
        "count": count,
        "in_backlogs": deferred,
        "redis_bytes_per_deferred": (after - before) / deferred,
        "redis_beyond_body_per_deferred": (after - before - split["bodies"]) / deferred,
        "redis_split_bytes_per_deferred": {k: v / deferred for k, v in split.items()},
    }


def backlog_sizes(world: World) -> list[int]:
    pipe = world.redis.pipeline(transaction=False)
    for key in world.redis.scan_iter(match=KEYS.backlog("*")):
        pipe.zcard(key)
    return [int(x) for x in pipe.execute()]
