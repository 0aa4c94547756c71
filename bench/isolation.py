"""Endpoint isolation (issue #19): an endpoint that never answers must not slow the others.

One worker at the default setup of `shahihooks worker` (threads 1x16), the default timeout
(15 s), the rate limit off, and, in the same run and with the same worker:

  alone   n emits to a healthy endpoint;
  paired  n emits to another healthy endpoint and to a second healthy one (a control: as many
          messages for the worker as `beside`, none of them hanging);
  beside  n emits to another healthy endpoint and to one that never answers (each emit goes
          to both).

The emits come faster than one worker delivers, so a latency is mostly the wait in the queue:
`paired` tells what twice the messages cost, `beside` against it what hanging costs.

Latency: the receiver's wall-clock arrival of each delivery id minus the time just before its
emit call (the emitter prints both). Alone, paired and beside measure three URLs, so each
starts with a fresh health (a limit of 2 in flight). From the first emit of `beside` on, every
0.5 s: the slots the hanging endpoint holds (`ZCOUNT {p}:fly:{tag} now +inf`), its limit and
whether its circuit is open, and the requests it has received.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.systems import Setup, Shahihooks
from bench.world import World, wait_progress
from shahihooks.contract import HealthField
from shahihooks.keys import Keys, url_tag

SETUP = Setup("threads", 1, 16)  # `shahihooks worker`: one process, 16 threads
ALONE, PAIRED, BESIDE, HANG = "/lat/alone", "/lat/paired", "/lat/beside", "/hang"
TWIN = "/hook"  # the second healthy endpoint of `paired`
WARM = 50  # deliveries the worker sends before anything is measured
EVERY_S = 0.5


def measure(world: World, n: int, watch_s: float) -> dict[str, Any]:
    """Alone, then beside, with one worker; the slots over `watch_s` from the first emit."""
    system = Shahihooks()
    world.fresh()
    env = world.env(SHAHIHOOKS_RATE_LIMIT="0")  # SHAHIHOOKS_TIMEOUT: the default, 15 s
    (argv,) = system.workers(SETUP)
    load = os.getloadavg()[0]
    worker = world.spawn(argv, env)
    try:
        warm_up(world, system, env)
        alone = latencies(world, system, env, n, [ALONE])
        print(f"  alone   {line(alone)}", flush=True)
        paired = latencies(world, system, env, n, [PAIRED, TWIN])
        print(f"  paired  {line(paired)}", flush=True)
        slots = Slots(world, world.url(HANG))
        slots.start()
        beside = latencies(world, system, env, n, [BESIDE, HANG])
        print(f"  beside  {line(beside)}", flush=True)
        series = slots.until(beside["first_emit"], watch_s)
    finally:
        world.halt(worker, signal.SIGKILL)  # a warm shutdown would wait out the hanging attempts
    counts = [s["slots"] for s in series]
    print(f"  slots held by the hanging endpoint: {runs(series)}", flush=True)
    return {
        "setup": SETUP.label,
        "n": n,
        "load_at_start": load,
        "alone": alone,
        "paired": paired,
        "beside": beside,
        "p50_ratio": beside["p50_ms"] / alone["p50_ms"],
        "p99_ratio": beside["p99_ms"] / alone["p99_ms"],
        "p50_ratio_paired": beside["p50_ms"] / paired["p50_ms"],
        "p99_ratio_paired": beside["p99_ms"] / paired["p99_ms"],
        "hanging": {
            "every_s": EVERY_S,
            "watch_s": watch_s,
            "min": min(counts),
            "max": max(counts),
            "series": series,
        },
    }


def warm_up(world: World, system: Shahihooks, env: dict[str, str]) -> None:
    """The worker is up and has sent a few deliveries before anything is timed."""
    emit(world, system, env, WARM, ["/hook"])
    wait_progress(lambda: int(world.received().get("count", 0)), WARM, "the warm-up")


def emit(
    world: World, system: Shahihooks, env: dict[str, str], n: int, paths: list[str]
) -> dict[str, dict[str, float]]:
    """Emit `n` events to `paths` from a subprocess: {url: {delivery id: emit time}}."""
    urls = [world.url(p) for p in paths]
    argv = [system.python, "-m", "bench.emitter", str(n), "--times"]
    out = world.run(argv, {**env, "SHAHIHOOKS_URLS": " ".join(urls)}, system.cwd)
    emitted: dict[str, dict[str, float]] = {u: {} for u in urls}
    for row in out.splitlines():
        delivery_id, at, url = row.split()
        emitted[url][delivery_id] = float(at)
    return emitted


def latencies(
    world: World, system: Shahihooks, env: dict[str, str], n: int, paths: list[str]
) -> dict[str, Any]:
    """Emit `n` to `paths`; the latency of the first (healthy) one's deliveries."""
    emitted = emit(world, system, env, n, paths)[world.url(paths[0])]
    query = f"/_arrivals?path={paths[0]}"
    arrivals: dict[str, float] = {}

    def count() -> int:
        arrivals.update(world.receiver(query) or {})
        return len(arrivals)

    wait_progress(count, len(emitted), f"deliveries to {paths[0]}", every=0.1)
    return summary(emitted, arrivals)


def summary(emitted: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    """Latency percentiles (ms) of the deliveries emitted, and when the last one arrived."""
    ms = sorted((arrived[i] - at) * 1000 for i, at in emitted.items() if i in arrived)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    first = min(emitted.values())
    return {
        "emitted": len(emitted),
        "arrived": len(ms),
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "max_ms": ms[-1],
        "mean_ms": statistics.fmean(ms),
        "first_emit": first,
        "emits_s": max(emitted.values()) - first,
        "last_arrival_s": max(arrived[i] for i in emitted if i in arrived) - first,
    }


def line(s: dict[str, Any]) -> str:
    return (
        f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, max {s['max_ms']:.0f} ms; "
        f"{s['arrived']}/{s['emitted']} arrived, the last {s['last_arrival_s']:.1f} s after "
        f"the first emit (emits took {s['emits_s']:.1f} s)"
    )


def runs(series: list[dict[str, Any]]) -> str:
    """The slots over time as runs of one state: '0.0-14.5 s: 2 (limit 2), 15.0-40.0 s: 1
    (limit 1)'; a limit never set is the initial 2."""
    parts = []
    for (slots, limit, opened), group in itertools.groupby(series, key=state):
        samples = list(group)
        circuit = ", circuit open" if opened else ""
        parts.append(
            f"{samples[0]['t']:.1f}-{samples[-1]['t']:.1f} s: {slots} (limit {limit:g}{circuit})"
        )
    return ", ".join(parts)


def state(sample: dict[str, Any]) -> tuple[int, float, bool]:
    limit = sample["limit"]
    return sample["slots"], 2.0 if limit is None else limit, sample["circuit_open"]


@dataclass
class Slots:
    """Samples, every EVERY_S in a thread, the hanging endpoint's slots, limit and circuit."""

    world: World
    url: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        keys, tag = Keys(), url_tag(self.url)
        fly, health = keys.in_flight(tag), keys.health(tag)
        while not self.stop.is_set():
            now = time.time()
            pipe = self.world.redis.pipeline(transaction=False)
            pipe.zcount(fly, now * 1000, "+inf")
            pipe.hmget(health, HealthField.LIMIT, HealthField.OPEN_UNTIL)
            slots, (cw, opened) = pipe.execute()
            self.samples.append(
                {
                    "at": now,
                    "slots": int(slots),
                    "limit": float(cw) if cw else None,  # None: never set, the initial 2
                    "circuit_open": bool(opened and float(opened) > now * 1000),
                    "requests": int(self.world.received().get("hung", 0)),
                }
            )
            self.stop.wait(EVERY_S - (time.time() - now) % EVERY_S)

    def until(self, first_emit: float, watch_s: float) -> list[dict[str, Any]]:
        """Sample on until `watch_s` after `first_emit`; the samples of that span, with `t`
        the seconds since the first emit."""
        end = first_emit + watch_s
        self.stop.wait(max(0.0, end - time.time()))
        self.stop.set()
        self.thread.join()
        return [
            {**s, "t": round(s["at"] - first_emit, 2)}
            for s in self.samples
            if first_emit <= s["at"] <= end
        ]
