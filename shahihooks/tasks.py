"""The Celery task: a thin shell that runs one attempt and tells Celery (and Flower) how it went.

delivered            SUCCESS
waiting for a retry  RETRY (the retry waits in Redis's schedule, not in this message)
dead-lettered        FAILURE, with the reason
an outage            the message goes back to the queue (Redis or the broker unreachable)
a copy or stale      ignored (the delivery is handled by its live message)
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Ignore, Reject, Retry

from shahihooks.app import app, publisher
from shahihooks.broker import acknowledged, consumes_here
from shahihooks.connections import OUTAGES
from shahihooks.delivery import attempt
from shahihooks.errors import DeliveryError
from shahihooks.hooks import hooks
from shahihooks.outcome import Kind
from shahihooks.publish import TASK_NAME
from shahihooks.settings import current
from shahihooks.state import Ack, Verdict, state_for

logger = logging.getLogger("shahihooks.tasks")
OUTAGE_PAUSE_S = 1.0


@app.task(
    bind=True,
    name=TASK_NAME,
    max_retries=None,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    throws=(DeliveryError,),  # a dead letter is an expected failure: logged without a traceback
)
def deliver(self: Any, delivery_id: str, token: int = 1) -> str:
    """Attempt delivery `delivery_id`, if this message (`token`) is still its live one."""
    settings = current()
    keys = publisher.unacked_keys(settings) if consumes_here() else None
    tag = (self.request.properties or {}).get("delivery_tag")
    ack = Ack(*keys, str(tag)) if keys is not None and tag else None
    try:
        result = attempt(delivery_id, int(token), settings, hooks, state_for(settings), ack)
    except OUTAGES as exc:  # the outcome is unknown: the message goes back to the queue
        logger.warning("requeued %s: %s: %s", delivery_id, type(exc).__name__, exc)
        time.sleep(OUTAGE_PAUSE_S)
        raise Reject(exc, requeue=True) from exc
    if result.acked:
        acknowledged(str(tag))
    if result.verdict in (Verdict.STALE, Verdict.BUSY):
        raise Ignore()
    if result.verdict in (Kind.DEAD, Verdict.DEAD):
        raise DeliveryError(f"dead-lettered: {result.reason}")
    if result.verdict is Kind.DELIVERED:
        return result.reason
    when: Any = round(result.delay_s)  # seconds (celery-types says Real, which int is)
    raise Retry(result.reason, DeliveryError(result.reason), when=when)
