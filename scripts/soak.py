"""`make soak`: thousands of deliveries over a few minutes, with random receiver failures and
one worker restart, then the ledger: every emitted delivery delivered or dead-lettered.

Real processes: a private redis-server (append-only), two workers, an emitter, the HTTPS
test receiver. Not part of `make test`.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults import World, halt
from tests.receiver import start_receiver

COUNT = 3000
PAUSE_S = 0.03


def answer(n: int) -> int:
    roll = random.random()
    if roll < 0.15:
        return 500
    if roll < 0.20:
        time.sleep(0.2)
    return 200


def main() -> int:
    ca = trustme.CA()
    folder = Path(__import__("tempfile").mkdtemp(prefix="shahihooks-soak-"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    receiver = start_receiver(ca, str(folder / "ca.pem"), ("127.0.0.1",))
    receiver.rule("/soak", answer)
    world = World(receiver, str(folder / "ca.pem"))
    world.settings["SHAHIHOOKS_RETRY_SCHEDULE"] = "1,2,4"
    world.start_redis()
    try:
        first = world.worker()
        world.worker()
        print(
            f"soak: {COUNT} deliveries over ~{COUNT * PAUSE_S:.0f} s, 15% answered 500, "
            "5% slow, one worker restarted midway",
            flush=True,
        )
        emitter = world.emitter(COUNT, "/soak", PAUSE_S)
        time.sleep(COUNT * PAUSE_S * 0.4)
        print("restarting one worker (SIGTERM, then a new one)", flush=True)
        halt(first, signal.SIGTERM)
        world.worker()
        out, _ = emitter.communicate(timeout=COUNT * PAUSE_S * 5)
        rows = [json.loads(line) for line in out.splitlines()]
        ids = [r["ok"] for r in rows if "ok" in r]
        print(
            f"emitted {len(ids)} ({len(rows) - len(ids)} refused); waiting for the ledger",
            flush=True,
        )
        ledger = world.wait_ledger(ids, "/soak", timeout=300)
        failures = sum(1 for r in receiver.requests_to("/soak")) - ledger.received_total
        print(f"ledger: {ledger}")
        print(
            f"receiver answered {len(receiver.requests_to('/soak'))} requests "
            f"({failures} outside this run)"
        )
        return 0 if not ledger.missing else 1
    finally:
        world.close()
        receiver.server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
