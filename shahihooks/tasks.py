"""The Celery task: a thin shell that runs one attempt and tells Celery (and Flower) how it went.

delivered            SUCCESS
waiting for a retry  RETRY (the retry waits in Redis's schedule, not in this message)
held back            RETRY, "waiting in the backlog: ..." (its endpoint's limit, circuit or
                     rate limit: it waits there without spending an attempt)
dead-lettered        FAILURE, with the reason
an outage            the message goes back to the queue (Redis or the broker unreachable)
a copy or stale      ignored (the delivery is handled by its live message)
unreadable           FAILURE, ERROR logged: a message of an earlier shape or another
                     version (schema.py) is never dropped silently: its delivery is
                     dead-lettered, or the message kept in `{p}:unknown`
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn, assert_never

from celery.exceptions import Ignore, Reject, Retry

from shahihooks import broker, shards
from shahihooks.app import app, publisher
from shahihooks.connections import OUTAGES
from shahihooks.delivery import Result, run_attempt
from shahihooks.errors import DeliveryError
from shahihooks.hooks import hooks
from shahihooks.mover import publish_due
from shahihooks.outcome import Kind
from shahihooks.publish import TASK_NAME
from shahihooks.schema import UNKNOWN_MAX, message_args, raw_message
from shahihooks.settings import current
from shahihooks.state import MessageRef, Verdict

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
    Request=broker.deliver_request(),
)
def deliver(self: Any, *args: Any, **kwargs: Any) -> str:
    """Attempt delivery `delivery_id`, if this message (`token`) is still its live one:
    `deliver(delivery_id, token, v=MESSAGE_SCHEMA)`; any other message is `unreadable`."""
    found = message_args(args, kwargs)
    if isinstance(found, str):
        unreadable(args, kwargs, found)
    ref = MessageRef(*found)
    settings = current()
    ack = broker.ack_for(self.request, settings)
    try:  # a process's first State looks at its Redis: an outage there too is requeued
        state = shards.of_delivery(settings, ref.delivery_id)
        result = run_attempt(ref, hooks, state, ack)
    except OUTAGES as exc:  # the outcome is unknown: the message goes back to the queue
        logger.warning("requeued %s: %s: %s", ref.delivery_id, type(exc).__name__, exc)
        time.sleep(OUTAGE_PAUSE_S)
        raise Reject(exc, requeue=True) from exc
    broker.after_attempt(ack, result.acked)
    if result.released:  # the slot this attempt freed, handed on to its endpoint's backlog
        try:
            publish_due(publisher, state, result.released)  # of its endpoint: its shard
        except Exception as exc:  # left for the mover (unpublished, or the lost-message check)
            logger.warning("released deliveries not published yet: %s: %s", type(exc).__name__, exc)
    return reported(result)


def reported(result: Result) -> str:
    """What Celery (and Flower) is told of the message: every verdict has its case."""
    match result.verdict:
        case Kind.DELIVERED:
            return result.reason
        case Kind.RETRY:
            when: Any = round(result.delay_s)  # seconds (celery-types says Real, which int is)
            raise Retry(result.reason, DeliveryError(result.reason), when=when)
        case Kind.DEAD | Verdict.DEAD:
            raise DeliveryError(f"dead-lettered: {result.reason}")
        case Verdict.DEFERRED:  # waiting, not failed: no attempt was spent
            reason = f"waiting in the backlog: {result.reason}"
            raise Retry(reason, DeliveryError(reason))
        case Verdict.STALE | Verdict.BUSY:
            raise Ignore()
        case _:
            assert_never(result.verdict)


def unreadable(args: tuple[Any, ...], kwargs: dict[str, Any], reason: str) -> NoReturn:
    """A message this version cannot read: its delivery dead-lettered if it names one
    queued here, else kept in `{p}:unknown`; an ERROR either way, and the task fails (its
    message acknowledged only once it is recorded: an outage requeues it)."""
    settings = current()
    named = args[0] if args and isinstance(args[0], str) else ""
    try:
        state = shards.of_delivery(settings, named) if named else shards.shards(settings)[0]
        done = state.unknown(named, raw_message(args, kwargs, reason), reason, UNKNOWN_MAX)
    except OUTAGES as exc:
        logger.warning("requeued an unreadable message: %s: %s", type(exc).__name__, exc)
        time.sleep(OUTAGE_PAUSE_S)
        raise Reject(exc, requeue=True) from exc
    where = (
        f"delivery {named} dead-lettered (replay it: shahihooks dead replay {named})"
        if done == "dead"
        else f"kept in {settings.prefix}:unknown"
    )
    # not its arguments: an earlier shape carried the URL (credentials); Redis keeps them
    logger.error("unreadable deliver message (%d arguments): %s; %s", len(args), reason, where)
    raise DeliveryError(f"unreadable message: {reason}; {where}")
