"""Redis commands per delivery, from `INFO commandstats` deltas on the private redis-server.

Redis counts the commands a Lua script runs under their own names, so the totals are all
the work Redis did; the client's round trips are the EVALSHA calls (ours) and kombu's own
commands (BRPOP, the ack's MULTI/ZREM/HDEL/EXEC...).
"""

from __future__ import annotations

from typing import Any

from bench.systems import Setup, Shahihooks, System, emit_urls
from bench.world import World, wait, wait_progress
from shahihooks.keys import Keys, url_tag

OURS = ("evalsha", "eval", "script|load", "hvals")  # the client calls shahihooks makes


def per_delivery(world: World, system: System, setup: Setup, n: int) -> dict[str, Any]:
    """Every Redis command of `n` deliveries end to end (emit or enqueue included)."""
    world.fresh()
    world.redis.config_resetstat()
    system.enqueue(world, n, "/hook")
    env = system.env(world)
    procs = [world.spawn(argv, env, system.cwd) for argv in system.workers(setup)]
    try:
        wait_progress(lambda: int(world.received().get("count", 0)), n, system.name)
        wait(lambda: world.pending(system.queue) == 0, 60, "the last acknowledgements")
    finally:
        for proc in procs:
            world.halt(proc)
    return split(world.commandstats(), n)


def split(stats: dict[str, int], n: int) -> dict[str, Any]:
    per = {k: v / n for k, v in sorted(stats.items()) if v and k != "config|resetstat"}
    return {
        "total": sum(per.values()),
        "client_calls_of_ours": sum(per.get(k, 0.0) for k in OURS),
        "by_command": per,
    }


def backlog_depths(world: World, depths: tuple[int, ...], k: int) -> dict[str, Any]:
    """Commands per delivery released from a backlog `depth` deep (plus the `k` measured).

    At emit the URL's limit is 1 per hour, so all but the first wait in its backlog. A worker
    whose limit is k+1 delivers the first; then one more emit (at limit k+1) tells the
    backlog it has room, the mover releases k, and the k are delivered. Counted: from that
    emit to the k-th acknowledgement. Worker start-up is outside; idle polling is inside,
    and takes about the same time at every depth.
    """
    out: dict[str, Any] = {}
    for depth in depths:
        out[str(depth)] = one_depth(world, depth, k)
        left = out[str(depth)]["backlog_after"]
        print(
            f"  backlog {depth + k:>6} deep, {k} released: "
            f"{out[str(depth)]['total']:.2f} commands per delivery ({left} left waiting)",
            flush=True,
        )
    return out


def one_depth(world: World, depth: int, k: int) -> dict[str, Any]:
    system, url = Shahihooks(), world.url("/hook")
    world.fresh()
    limits = {"SHAHIHOOKS_BACKLOG_MAX": str(depth + k + 10)}
    emit_urls(world, system, depth + k, [url], env={**limits, "SHAHIHOOKS_RATE_LIMIT": "1"})
    room = {**limits, "SHAHIHOOKS_RATE_LIMIT": str(k + 1)}
    env = world.env(**room)
    (argv,) = system.workers(Setup("threads", 1, 16))
    proc = world.spawn(argv, env)
    try:
        wait_progress(lambda: int(world.received().get("count", 0)), 1, "the first delivery")
        wait(lambda: world.pending(system.queue) == 0, 60, "an idle worker")
        world.redis.config_resetstat()
        emit_urls(world, system, 1, [url], env=room)
        wait_progress(lambda: int(world.received().get("count", 0)), 1 + k, "the release")
        wait(lambda: world.pending(system.queue) == 0, 60, "the last acknowledgements")
        stats = world.commandstats()
    finally:
        world.halt(proc)
    left = int(world.redis.zcard(Keys().backlog(url_tag(url))))
    return {**split(stats, k), "backlog_after": left}
