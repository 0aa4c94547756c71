"""Django signals for shahihooks' operational events (ops.py), sent in the worker:

    from shahihooks.contrib.django.signals import endpoint_disabled

    @receiver(endpoint_disabled)
    def page_someone(sender, event, data, **kwargs): ...

`ops_event` is sent for every one of them; each also has its own signal.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("shahihooks.ops")

ops_event = Signal()
endpoint_failing = Signal()
endpoint_recovered = Signal()
endpoint_disabled = Signal()
endpoint_enabled = Signal()
delivery_dead = Signal()

_BY_EVENT = {
    "endpoint.failing": endpoint_failing,
    "endpoint.recovered": endpoint_recovered,
    "endpoint.disabled": endpoint_disabled,
    "endpoint.enabled": endpoint_enabled,
    "delivery.dead": delivery_dead,
}


def send(event: str, data: dict[str, Any]) -> None:
    """Send `ops_event` and the event's own signal; a receiver that raises is only logged."""
    for signal in (ops_event, _BY_EVENT.get(event)):
        if signal is None:
            continue
        for receiver, result in signal.send_robust(sender="shahihooks", event=event, data=data):
            if isinstance(result, Exception):
                logger.error("signal receiver %r raised on %s: %r", receiver, event, result)
