"""Operational events: operators told when an endpoint falls sick, recovers, is disabled.

    endpoint.failing    its circuit opened (once per opening): url, consecutive_failures,
                        failing_since, last_error, next_probe_at
    endpoint.recovered  a success closed its circuit: url, failing_since
    endpoint.disabled   disabled (SHAHIHOOKS_DISABLE_AFTER of failures, or an operator):
                        url, reason
    endpoint.enabled    enabled again by an operator: url
    delivery.dead       a delivery was dead-lettered: url, delivery_id, event, attempts,
                        reason, status (not for those of a disabled endpoint: endpoint.disabled
                        says it once)

URLs are masked as everywhere (redact_url). The decisions are taken atomically in Lua, which
leaves each event in `{p}:ops`; a worker then (right after the attempt that caused it, or its
mover within a second) runs the Python hooks (`hooks.on_ops_event`, Django's signals) and
sends it through the same pipeline as any delivery — signed, retried, logged, dead-lettered —
to SHAHIHOOKS_OPS_URLS, signed with SHAHIHOOKS_OPS_SECRET (default: the secret). Each event
is emitted with its id as the idempotency key, so two workers draining at once send it once;
the Python hooks run in the one whose HDEL took the event (a crash between the two: the
event was sent, its hooks not run).
No event is ever about an operational endpoint itself.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from shahihooks import shards
from shahihooks.hooks import Hooks
from shahihooks.settings import Settings
from shahihooks.state import State

logger = logging.getLogger("shahihooks.ops")

OPS_EVENTS = {
    "endpoint.failing": "an endpoint's circuit opened after failures in a row",
    "endpoint.recovered": "a success closed an endpoint's circuit",
    "endpoint.disabled": "an endpoint was disabled: nothing more is sent to it",
    "endpoint.enabled": "an endpoint was enabled again",
    "delivery.dead": "a delivery was dead-lettered",
}

_TIMES = ("failing_since", "next_probe_at")
DRAIN_BATCH = 100


def _event(raw: bytes | str) -> tuple[str, dict[str, Any], int]:
    """An event as Lua left it: its name, its data (times as numbers), when (ms)."""
    item = json.loads(raw)
    data: dict[str, Any] = dict(item.get("data") or {})
    for name in _TIMES:
        if name in data:
            data[name] = float(data[name]) if data[name] else None
    if "status" in data:
        data["status"] = int(data["status"]) if str(data["status"]).isdigit() else None
    return str(item["event"]), data, int(item["at_ms"])


def drain(settings: Settings, hooks: Hooks) -> int:
    """Send the operational events waiting in Redis (oldest first); returns how many."""
    return sum(_drain(state, settings, hooks) for state in shards.shards(settings))


def _drain(state: State, settings: Settings, hooks: Hooks) -> int:
    """The operational events of one shard (an endpoint's are in its shard)."""
    from shahihooks.emit import emit_operational

    client, key = state.client, state.keys.ops
    found: Any = client.hscan(key, 0, count=DRAIN_BATCH)[1]
    items = sorted(
        ((_text(k), *_event(v)) for k, v in found.items()), key=lambda item: (item[3], item[0])
    )
    claimed = 0
    for event_id, event, data, at_ms in items:
        if settings.ops_urls:  # first, and by its id: two drainers at once send it once
            emit_operational(event, data, key=event_id, at_s=at_ms // 1000, settings=settings)
        if not client.hdel(key, event_id):
            continue  # another drainer (a thread's attempt, the mover) took it: its hooks ran there
        claimed += 1
        hooks.run_ops(event, data)
        django_signals = sys.modules.get("shahihooks.contrib.django.signals")
        if django_signals is not None:  # loaded by the Django app's ready()
            django_signals.send(event, data)
    return claimed


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
