"""`emit` to 10 endpoints against a loop of plain `apply_async`, nothing consuming: the cost
on the producer's side (a web request), per delivery enqueued and per call."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.systems import DATA_CONTENT
from bench.world import World

DATA = {"ticket_id": 123, "title": "Login issue", "content": DATA_CONTENT}


def fan_out(world: World, runs: int, emits: int) -> dict[str, Any]:
    import shahihooks
    from bench import naive
    from shahihooks.settings import Settings

    urls = [world.url(f"/hook{i}") for i in range(10)]
    env = world.env(SHAHIHOOKS_URLS=" ".join(urls))
    values = {k.removeprefix("SHAHIHOOKS_"): v for k, v in env.items() if k.startswith("SHAHI")}
    shahihooks.configure(Settings.from_mapping(values))
    naive.app.conf.broker_url = world.redis_url

    def ours() -> tuple[float, list[float]]:
        world.fresh()
        lat, start = [], time.perf_counter()
        for i in range(emits):
            t = time.perf_counter()
            shahihooks.emit("ticket.created", {**DATA, "ticket_id": i})
            lat.append(time.perf_counter() - t)
        return emits * 10 / (time.perf_counter() - start), lat

    def plain() -> tuple[float, list[float]]:
        world.fresh()
        lat, start = [], time.perf_counter()
        for i in range(emits * 10):
            t = time.perf_counter()
            naive.send.apply_async((urls[0], "ticket.created", {**DATA, "ticket_id": i}))
            lat.append(time.perf_counter() - t)
        return emits * 10 / (time.perf_counter() - start), lat

    rows: dict[str, list[tuple[float, list[float]]]] = {"emit": [], "apply_async": []}
    for _ in range(runs):  # interleaved
        rows["emit"].append(ours())
        rows["apply_async"].append(plain())
    world.fresh()
    out: dict[str, Any] = {}
    for name, found in rows.items():
        lat = sorted(x for _, ls in found for x in ls)
        out[name] = {
            "enqueued_per_s": statistics.median(r for r, _ in found),
            "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000,
        }
    out["ratio"] = out["emit"]["enqueued_per_s"] / out["apply_async"]["enqueued_per_s"]
    out["p99_ratio"] = out["emit"]["p99_ms"] / out["apply_async"]["p99_ms"]
    return out
