"""Emit N `ticket.created` events of about 1 KB each, with an idempotency key, to the URLs in
SHAHIHOOKS_URLS. A subprocess, so the shahihooks measured is the one first on PYTHONPATH
(this checkout, or an earlier commit exported beside it).

    python -m bench.emitter N [--ids]      # --ids: print each delivery id
    python -m bench.emitter N --times      # each delivery's "id emit_time url" (time: just
                                           # before its emit call, wall clock)

BENCH_NO_REPLICA_WAIT=1 (the bench's Redis Cluster, which has no replicas): an emit step does
not wait for a replica to confirm it (`WAIT 1 1000`, then none on that primary for 10 s: a
second per primary every 10 s, when there is none to wait for), so the emit's rate and Redis
cost are a deployment's with replicas, less the WAIT (and the replication).
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import shahihooks
from shahihooks.state import State

CONTENT = "x" * 940


def main(count: int, print_ids: bool, print_times: bool) -> None:
    run = uuid.uuid4().hex[:8]
    lines: list[str] = []  # printed at the end: printing does not slow the emits down
    for i in range(count):
        data = {"ticket_id": i, "title": "Login issue", "content": CONTENT}
        at = time.time()
        deliveries = shahihooks.emit("ticket.created", data, key=f"bench-{run}-{i}")
        if print_times:
            lines += (f"{d.id} {at:.6f} {d.url}" for d in deliveries)
        elif print_ids:
            lines += (d.id for d in deliveries)
    if lines:
        print("\n".join(lines))


if __name__ == "__main__":
    if os.environ.get("BENCH_NO_REPLICA_WAIT"):
        State._wait_for_a_replica = lambda self, conn, name: None  # type: ignore[method-assign]
    main(int(sys.argv[1]), "--ids" in sys.argv[2:], "--times" in sys.argv[2:])
