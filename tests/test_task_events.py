"""Task events (`-E`, what Flower shows): a real worker process sends every event of every
delivery, in batches — not a Redis publish per event — read back by Celery's own event
receiver, the way Flower reads them."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from celery import Celery

from tests.conftest import wait_until
from tests.faults import World
from tests.receiver import Receiver


def test_every_task_event_arrives_and_they_leave_the_worker_in_batches(
    world: World, receiver: Receiver
) -> None:
    path = f"/events-{uuid.uuid4().hex[:6]}"
    seen: list[dict[str, Any]] = []
    app = Celery("listener", broker=world.url)
    with app.connection() as conn:
        listener = app.events.Receiver(conn, handlers={"*": seen.append})
        reading = threading.Thread(target=listener.capture, kwargs={"wakeup": False})
        reading.start()
        try:
            client = world.client
            wait_until(lambda: client.execute_command("PUBSUB", "NUMPAT"), 10, "a subscriber")
            # all queued before the worker starts, so they go as fast as it can send them (not
            # spread out by a loaded machine's emitter: one batch per delivery at worst)
            ids = world.emit(300, path)
            world.worker(8, 1, "-E")
            ledger = world.wait_ledger(ids, path, timeout=60)
            assert ledger.missing == []

            def states() -> dict[str, set[str]]:
                out: dict[str, set[str]] = {}
                for event in list(seen):
                    out.setdefault(str(event.get("uuid")), set()).add(event["type"])
                return out

            wanted = {"task-received", "task-started", "task-succeeded"}
            wait_until(
                lambda: all(wanted <= states().get(i, set()) for i in ids), 20, "every event"
            )
        finally:
            listener.should_stop = True
            reading.join(timeout=10)
    publishes: Any = client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)
    # 900 task events (and the worker's own heartbeats) in far fewer messages than deliveries
    print(f"\n{publishes} publishes for {len(ids)} deliveries")
    assert publishes < len(ids) // 2, publishes
