"""The sweeper: a delivery whose message was lost is queued again, never dropped.

kombu's Redis transport pops a message, then records it as unacknowledged; a worker killed
between the two loses it, and a Redis restarted without fsync can lose its last writes.
shahihooks keeps its own ledger of pending deliveries (`keys.pending`), touched at every
sign of life (emit, attempt, retry). A delivery silent for longer than any legitimate wait
(the visibility timeout) while the queue is empty has no message left anywhere: the sweeper,
running in every worker, queues its next attempt again. Idempotency makes a false alarm
harmless: a copy of a live delivery finds it delivered, leased or already finished.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from shahihooks.celeryconf import visibility_timeout_s
from shahihooks.connections import redis_client, script
from shahihooks.keys import Keys
from shahihooks.publish import Job, direct_queue, publish
from shahihooks.settings import Settings, current

logger = logging.getLogger("shahihooks.sweep")
STALE_MARGIN_S = 10.0


def stale_after_s(settings: Settings) -> float:
    """Silence longer than this means the delivery's message is gone."""
    return visibility_timeout_s(settings) + STALE_MARGIN_S


def interval_s(settings: Settings) -> float:
    return min(60.0, max(1.0, visibility_timeout_s(settings) / 10))


def sweep(settings: Settings, now: float | None = None, limit: int = 1000) -> list[Job]:
    """Queue again the deliveries that have gone silent; return what was queued."""
    from shahihooks.app import app

    now = time.time() if now is None else now
    queue = direct_queue(app)
    if queue is not None and redis_client(str(app.conf.broker_url)).llen(queue):
        return []  # messages still waiting: a silent delivery may simply be among them
    keys = Keys(settings.prefix)
    found: Any = script(redis_client(settings.redis_url), "sweep")(
        keys=[keys.pending, keys.pending_at, keys.sweep_lock],
        args=[
            f"{now - stale_after_s(settings):.3f}",
            f"{now:.3f}",
            limit,
            max(1, int(interval_s(settings))),
        ],
    )
    jobs = []
    for raw_id, raw_info in zip(found[::2], found[1::2], strict=True):
        url, event, attempt = json.loads(raw_info)
        jobs.append(Job(raw_id.decode(), url, event, int(attempt)))
    if jobs:
        publish(jobs)
        logger.warning(
            "re-queued %d deliveries silent for over %.0f s (their messages were lost): %s",
            len(jobs),
            stale_after_s(settings),
            ", ".join(j.delivery_id for j in jobs[:5]),
        )
    return jobs


def start_sweeper() -> threading.Event:
    """Sweep every `interval_s` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s(current())):
            try:
                sweep(current())
            except Exception:
                logger.exception("sweep failed; trying again in %.0f s", interval_s(current()))

    threading.Thread(target=loop, name="shahihooks-sweeper", daemon=True).start()
    return stop
