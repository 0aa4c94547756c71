"""Emit N `ticket.created` events of about 1 KB each, with an idempotency key, to the URLs in
SHAHIHOOKS_URLS. A subprocess, so the shahihooks measured is the one first on PYTHONPATH
(this checkout, or an earlier commit exported beside it).

    python -m bench.emitter N [--ids]      # --ids: print each delivery id
    python -m bench.emitter N --times      # each delivery's "id emit_time url" (time: just
                                           # before its emit call, wall clock)
"""

from __future__ import annotations

import sys
import time
import uuid

import shahihooks

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
    main(int(sys.argv[1]), "--ids" in sys.argv[2:], "--times" in sys.argv[2:])
