"""Emit N `ticket.created` events of about 1 KB each, with an idempotency key, to the URLs in
SHAHIHOOKS_URLS. A subprocess, so the shahihooks measured is the one first on PYTHONPATH
(this checkout, or an earlier commit exported beside it).

    python -m bench.emitter N [--ids]      # --ids: print each delivery id
"""

from __future__ import annotations

import sys
import uuid

import shahihooks

CONTENT = "x" * 940


def main(count: int, print_ids: bool) -> None:
    run = uuid.uuid4().hex[:8]
    for i in range(count):
        data = {"ticket_id": i, "title": "Login issue", "content": CONTENT}
        deliveries = shahihooks.emit("ticket.created", data, key=f"bench-{run}-{i}")
        if print_ids:
            print("\n".join(d.id for d in deliveries))


if __name__ == "__main__":
    main(int(sys.argv[1]), "--ids" in sys.argv[2:])
