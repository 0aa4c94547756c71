"""The state's epoch: a marker key that tells a Redis restart that kept the state from one
that lost it, and the report of a loss (worker log, `doctor`, `stats`).

The first worker sets `{p}:epoch` (no TTL). Each worker remembers the marker it saw and looks
again every few seconds (the mover's queue watch): a marker gone, or replaced by another,
means the keys were lost — a restart of a Redis without persistence (its run id changed),
or FLUSHALL — and with them the deliveries that were queued or waiting then. The worker
that sets the new marker records the loss in `{p}:lost`; every worker logs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import redis

from shahihooks import shards
from shahihooks.keys import Keys
from shahihooks.settings import Settings

logger = logging.getLogger("shahihooks.worker")

LOST_TTL_S = 7 * 86_400  # a loss is reported this long, unless acknowledged sooner


@dataclass(frozen=True)
class Loss:
    at_ms: int
    reason: str

    def text(self) -> str:
        when = dt.datetime.fromtimestamp(self.at_ms / 1000, dt.UTC)
        return (
            f"the state in Redis was lost (found {when:%Y-%m-%d %H:%M:%S} UTC: {self.reason}): "
            "deliveries that were queued or waiting for a retry then may be gone, unsent"
        )


def _now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _run_id(client: redis.Redis) -> str:
    info: Any = client.info("server")
    return str(info.get("run_id", ""))


class Epoch:
    """One worker's memory of the marker it last saw, and the look that compares."""

    def __init__(self) -> None:
        self.marker: str | None = None
        self.run_id = ""

    def check(self, client: redis.Redis, keys: Keys) -> Loss | None:
        """Look at the marker (setting it if there is none); a loss found is logged."""
        run_id = _run_id(client)
        made = f"{os.urandom(8).hex()} {run_id}"
        created = bool(client.set(keys.epoch, made, nx=True))
        found: Any = made if created else client.get(keys.epoch)
        marker = found.decode() if isinstance(found, bytes) else str(found)
        seen, restarted = self.marker, bool(self.run_id) and run_id != self.run_id
        self.marker, self.run_id = marker, run_id
        if seen is None or marker == seen:
            return None  # the first look, or the same state (a restart with persistence)
        reason = (
            "Redis restarted without persistence (its run id changed)"
            if restarted
            else "its keys were deleted (FLUSHALL, FLUSHDB)"
        )
        loss = Loss(_now_ms(client), reason)
        if created:  # one worker records it; each one that saw the old marker says it
            client.hset(keys.lost, mapping={"at_ms": loss.at_ms, "reason": reason})
            client.expire(keys.lost, LOST_TTL_S)
        logger.error("%s. Make Redis persist: appendonly yes", loss.text())
        return loss


def lost(client: redis.Redis, keys: Keys) -> Loss | None:
    """The loss recorded in the last LOST_TTL_S, if not acknowledged."""
    found: Any = client.hgetall(keys.lost)
    if not found:
        return None
    fields = {k.decode(): v.decode() for k, v in found.items()}
    return Loss(int(fields.get("at_ms", "0")), fields.get("reason", ""))


def first_loss(settings: Settings) -> Loss | None:
    """The loss recorded in any of the state's shards (the first found), if any."""
    found = (lost(state.client, state.keys) for state in shards.shards(settings))
    return next((loss for loss in found if loss is not None), None)


def acknowledge(client: redis.Redis, keys: Keys) -> bool:
    """Forget the recorded loss (it was looked into); True if there was one."""
    return bool(client.delete(keys.lost))
