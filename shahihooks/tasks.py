"""The Celery task: a thin shell that runs one attempt and schedules the next."""

from __future__ import annotations

from typing import Any

from shahihooks.app import app
from shahihooks.delivery import run_attempt
from shahihooks.errors import DeliveryError
from shahihooks.hooks import hooks
from shahihooks.publish import describe
from shahihooks.settings import current


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
    step = run_attempt(delivery_id, url, event, attempt, current(), hooks)
    if step.done:
        return step.reason
    raise self.retry(
        args=(delivery_id, url, event, step.attempt),
        countdown=step.delay_s,
        exc=DeliveryError(step.reason),
        argsrepr=describe(event, url, step.attempt),
        kwargsrepr="{}",
    )
