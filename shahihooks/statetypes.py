"""The values the state's steps take and answer (state.py, contract.py): what `emit`,
`begin` and `finish` decided, a delivery's target, an attempt's outcome, what waits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from shahihooks.contract import EmitTarget, Stage


class Verdict(StrEnum):
    """What `begin` decided about one message."""

    GO = "go"  # the attempt holds the delivery: send it
    STALE = "stale"  # a copy, a superseded message, or a finished delivery: drop it
    BUSY = "busy"  # another copy is being sent right now: drop this one
    DEFERRED = "deferred"  # its URL's window is full: it waits in the backlog
    DEAD = "dead"  # it cannot be sent (endpoint removed, body lost): dead-lettered


class Placed(StrEnum):
    """Where `emit` put one delivery."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    DEAD = "dead"
    DUPLICATE = "duplicate"  # made by an earlier emit of the same key (a later step's)


class Finished(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    BUG = "bug"
    STALE = "stale"  # the attempt had lost its delivery (lease ran out, record gone): logged


@dataclass(frozen=True)
class Target:
    """One delivery of an emit, as the emit script needs it."""

    delivery_id: str
    tag: str
    url: str
    shown_url: str
    rate_limit: int
    source: str  # "store", "urls" (SHAHIHOOKS_URLS), "ops", or "" (a filter, an action)
    refused: str = ""  # why this target may not be sent to: dead-lettered at once

    def __repr__(self) -> str:
        """With the URL as shown: no credentials (error trackers capture locals)."""
        return (
            f"Target(delivery_id={self.delivery_id!r}, tag={self.tag!r}, "
            f"url={self.shown_url!r}, rate_limit={self.rate_limit!r}, "
            f"source={self.source!r}, refused={self.refused!r})"
        )

    def args(self) -> EmitTarget:
        return EmitTarget(
            self.delivery_id,
            self.tag,
            self.url,
            self.shown_url,
            self.rate_limit,
            self.source,
            self.refused,
        )


@dataclass(frozen=True)
class StoredEvent:
    """One emit as `State.emit` stores it, beside its deliveries: the event and its body,
    and what makes the emit itself one (its key, throttle and nonce)."""

    msg_id: str
    event: str
    timestamp: int
    data_json: str
    nonce: str  # the same for every try of this emit
    queue: str = ""  # the broker's queue, when the broker is the state Redis
    key: str | None = None  # the emit's idempotency key
    throttle: tuple[object, int] | None = None  # the throttled field's value, its window (s)
    fingerprint: str = ""  # of the secrets it is signed with
    traceparent: str = ""


@dataclass(frozen=True)
class Emitted:
    duplicate_of: list[tuple[str, str]] | None = None  # (id, url) of the first emit
    throttled: bool = False
    placed: tuple[Placed, ...] = ()
    # a duplicate's deliveries stored now, queued (steps the first emit never ran): their
    # messages are published by this emit
    completed: tuple[str, ...] = ()


def emitted(found: Sequence[str]) -> Emitted:
    """emit.lua's answer."""
    if found[0] == "again":  # each delivery's stage now: it was placed, or has moved on
        placed = (Placed.DEFERRED if s == Stage.BACKLOG else Placed.QUEUED for s in found[1:])
        return Emitted(placed=tuple(placed))
    if found[0] == "duplicate":
        return Emitted(duplicate_of=[(i, u) for i, u in json.loads(found[1])])
    if found[0] == "throttled":
        return Emitted(throttled=True)
    return Emitted(placed=tuple(Placed(v) for v in found[1:]))


@dataclass(frozen=True)
class Begun:
    verdict: Verdict
    reason: str = ""
    url: str = ""
    event: str = ""
    attempt: int = 0
    timestamp: int = 0
    site: str = ""
    data: str = ""
    endpoint_json: str = ""
    source: str = ""  # "store", "urls", "ops" or "" (see Target)
    fingerprint: str = ""  # of the secret the emitting app signs with (signing.fingerprint)
    traceparent: str = ""  # the W3C trace context of the emit (tracing.py)

    @classmethod
    def parse(cls, found: Sequence[str]) -> Begun:
        """begin.lua's answer: {'go', url, event, attempt, ts, site, data, endpoint_json,
        src, fingerprint, traceparent}, or {verdict, reason}."""
        verdict = Verdict(found[0])
        if verdict is not Verdict.GO:
            return cls(verdict, reason=found[1] if len(found) > 1 else "")
        url, event, attempt, ts, site, data, endpoint, source, fingerprint, trace = found[1:11]
        return cls(
            verdict,
            url=url,
            event=event,
            attempt=int(attempt),
            timestamp=int(ts),
            site=site,
            data=data,
            endpoint_json=endpoint,
            source=source,
            fingerprint=fingerprint,
            traceparent=trace,
        )


@dataclass(frozen=True)
class Due:
    """A message the mover must publish."""

    delivery_id: str
    token: int
    attempt: int
    event: str
    shown_url: str


def dues(rows: Sequence[str]) -> list[Due]:
    """Messages to publish, as the scripts list them: id, token, attempt, event, url each."""
    return [
        Due(rows[i], int(rows[i + 1]), int(rows[i + 2]), rows[i + 3], rows[i + 4])
        for i in range(0, len(rows), 5)
    ]


class Finish(NamedTuple):
    """What `finish` did: the outcome recorded, whether operational events now wait to be
    sent, and the messages its endpoint's backlog may now send (the freed slot, handed on)."""

    kind: Finished
    ops_waiting: bool
    released: list[Due]


@dataclass(frozen=True)
class Claimed:
    due: list[Due]
    next_in_s: float
    ops_waiting: int = 0  # operational events not sent yet


@dataclass(frozen=True)
class Outcome:
    """What `finish` records about one attempt."""

    kind: Finished
    delay_s: float = 0.0
    status: str = ""
    reason: str = ""
    response: str = ""
    stats_prefix: str = ""
    duration_ms: int = 0
    bucket: str = ""
    log: dict[str, str] | None = None
    signal: str = ""  # what the endpoint's health learns: ok, congested, failed ('' nothing)


class MessageRef(NamedTuple):
    """A deliver message's reference: its delivery, and the fencing token that says whether
    it is still that delivery's live message (`begin` and `finish` check it)."""

    delivery_id: str
    token: int


class Ack(NamedTuple):
    """An attempt's message, to acknowledge with its outcome: kombu's unacknowledged-message
    index and record in the state Redis (the broker), and the message's delivery tag
    (broker.py builds it)."""

    index_key: str
    record_key: str
    delivery_tag: str


@dataclass(frozen=True)
class Waiting:
    """What waits for one URL: its backlog (rate limit) and its retries."""

    tag: str
    shown_url: str
    backlog: int
    retrying: int
    oldest_s: float | None  # how long the backlog's head has waited
    next_release_in_s: float | None


class NotSent(Exception):
    """The step never reached Redis: it did not run."""


class MaybeSent(Exception):
    """Redis stopped answering after the step was sent: it may have run. `stored`: the
    deliveries queued by the steps of the same emit that ran before it (their messages are
    still to publish)."""

    def __init__(self, *args: object, stored: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.stored = stored
