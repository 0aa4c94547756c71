"""The Celery task: a thin shell that runs one attempt and schedules the next."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Reject, Retry

from shahihooks.app import app
from shahihooks.delivery import run_attempt
from shahihooks.errors import DeliveryError
from shahihooks.hooks import hooks
from shahihooks.publish import Job, reschedule
from shahihooks.settings import current

logger = logging.getLogger("shahihooks.tasks")
OUTAGE_PAUSE_S = 1.0


@app.task(
    bind=True,
    name="shahihooks.deliver",
    max_retries=None,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def deliver(self: Any, delivery_id: str, url: str, event: str, attempt: int = 1) -> str:
    """Deliver `delivery_id` to `url` (attempt `attempt`), rescheduling itself if needed."""
    settings = current()
    try:
        step = run_attempt(delivery_id, url, event, attempt, settings, hooks)
        if not step.done:
            finished = attempt if step.attempt > attempt else None
            job = Job(delivery_id, url, event, step.attempt, step.delay_s)
            reschedule(job, finished, settings)
    except Exception as exc:
        # Only an outage gets here (Redis unreachable, say): the attempt's outcome is
        # unknown, so the message goes back to the queue rather than being acknowledged.
        logger.warning("requeued %s: %s: %s", delivery_id, type(exc).__name__, exc)
        time.sleep(OUTAGE_PAUSE_S)
        raise Reject(exc, requeue=True) from exc
    if step.done:
        return step.reason
    # the next attempt is queued already; this marks the task RETRY for Flower
    when: Any = round(step.delay_s)  # seconds (celery-types says Real, which int is)
    raise Retry(step.reason, DeliveryError(step.reason), when=when)
