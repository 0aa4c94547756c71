"""Recovery after SIGKILL, with the default timings (timeout 15 s: lease 25 s, visibility
45 s, grace 60 s) and the rate limit off, as tests/test_faults.py does it: a worker is
killed a fifth of the way into a run, a new one (two processes, two movers) starts at once,
and the clock runs from the kill to the last delivery the receiver answers.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from bench.systems import Setup, Shahihooks, emit_urls
from bench.world import World, wait_progress
from shahihooks.keys import Keys


def after_sigkill(world: World, n: int) -> dict[str, Any]:
    system = Shahihooks()
    world.fresh()
    env = world.env(SHAHIHOOKS_RATE_LIMIT="0")
    ids = emit_urls(world, system, n, [world.url("/slow")], ids=True, env=env)
    (first,) = system.workers(Setup("threads", 1, 16))
    victim = world.spawn(first, env)
    wait_progress(lambda: int(world.received().get("count", 0)), n // 5, "the first fifth")
    world.halt(victim, signal.SIGKILL)
    killed_at, at_kill = time.time(), int(world.received()["count"])
    procs = [world.spawn(argv, env) for argv in system.workers(Setup("threads", 2, 16))]
    keys = Keys()
    try:
        wait_progress(lambda: delivered(world, keys, ids), n, "recovery", stall_s=180, every=0.2)
    finally:
        for proc in procs:
            world.halt(proc)
    got = world.received()
    return {
        "n": n,
        "killed_after": at_kill,
        "seconds_to_last_delivery": got["last"] - killed_at,
        "received": got["count"],
        "duplicates": got["count"] - n,
        "delivered": delivered(world, keys, ids),
    }


def delivered(world: World, keys: Keys, ids: list[str]) -> int:
    marks = world.redis.mget([keys.done(i) for i in ids])
    return sum(1 for m in marks if m == b"ok")
