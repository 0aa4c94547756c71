"""Operational events waiting in Redis are drained by whoever comes first — the thread whose
attempt caused them, the mover — and each event's Python hooks run once, however many
drain at the same moment."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections import Counter

from shahihooks import ops, shards
from shahihooks.hooks import Hooks


def test_drainers_at_once_run_each_events_hooks_once(settings) -> None:  # type: ignore[no-untyped-def]
    base = settings()
    # a prefix of its own (under the one the teardown deletes): the session worker's mover
    # drains the configured prefix's events, with the process's hooks, not these
    s = dataclasses.replace(base, prefix=f"{base.prefix}:drain-{uuid.uuid4().hex[:6]}")
    state = shards.shards(s)[0]
    events = {
        f"endpoint.failing:t{i}:{1000 + i}:{i}": json.dumps(
            {"event": "endpoint.failing", "at_ms": 1000 + i, "data": {"url": f"https://e{i}/"}}
        )
        for i in range(40)
    }
    state.client.hset(state.keys.ops, mapping=events)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def hook(event: str, data: dict[str, object]) -> None:
        time.sleep(0.002)  # long enough for the other drainers to read the same events
        with lock:
            seen[str(data["url"])] += 1

    hooks = Hooks()
    hooks.on_ops_event(hook)
    start = threading.Barrier(4)
    claimed: list[int] = []

    def drainer() -> None:
        start.wait()
        claimed.append(ops.drain(s, hooks))

    threads = [threading.Thread(target=drainer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(seen.values()) == [1] * 40, seen
    assert sum(claimed) == 40
    assert state.client.hlen(state.keys.ops) == 0
