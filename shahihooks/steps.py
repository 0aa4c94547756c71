"""An emit stored in steps: no step holds Redis long, and each shard stores its own.

An event for more than EMIT_CHUNK endpoints is stored in steps of EMIT_CHUNK, each with its
own copy of the body and, with a key, its own marker (`{p}:emit:{key}#{step}` after the
first). In a Redis Cluster (shards.py) each shard's endpoints are steps of their own, stored
by that shard's State. Steps are numbered in a stable order (by shard, then by the emit's
order), so an emit made again with the same key, after its process died between two steps,
runs exactly the steps that had not run, and none is lost. The key's first marker and the
throttle go with the first step: in a Cluster, on the lead shard that the throttle or the
key names (shards.lead_shard), whatever the endpoints, so a changed endpoint set still
meets them; a step of no delivery when none of the endpoints lives there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import redis

from shahihooks.contract import EmitArgs
from shahihooks.statetypes import Emitted, MaybeSent, NotSent, Placed, StoredEvent, Target

if TYPE_CHECKING:
    from shahihooks.state import State

EMIT_CHUNK = 500  # endpoints one emit step stores at most (a step holds Redis ~0.1 s)


@dataclass(frozen=True)
class Step:
    """One step of an emit: its body's id, its targets and their messages, its key marker."""

    msg_id: str
    targets: Sequence[Target]
    messages: Sequence[str]
    emitted_key: str  # its key's marker, or ''
    listed: str  # every target of the emit (the first step's marker lists them all)

    def only(self, delivery_ids: set[str]) -> Step:
        """This step with the targets (and their messages) of `delivery_ids` only."""
        keep = [i for i, t in enumerate(self.targets) if t.delivery_id in delivery_ids]
        return Step(
            self.msg_id,
            [self.targets[i] for i in keep],
            [self.messages[i] for i in keep] if self.messages else [],
            self.emitted_key,
            self.listed,
        )


@dataclass(frozen=True)
class Group:
    """The targets (and their messages) that one State stores: a shard's."""

    state: State
    targets: Sequence[Target]
    messages: Sequence[str]


def plan(new: StoredEvent, groups: Sequence[Group]) -> list[tuple[State, Step]]:
    """The steps of an emit, numbered across its groups, each with the State that runs it."""
    listed = json.dumps([[t.delivery_id, t.url] for g in groups for t in g.targets])
    steps: list[tuple[State, Step]] = []
    for group in groups:
        for start in range(0, max(1, len(group.targets)), EMIT_CHUNK):
            n = len(steps)
            step = Step(
                new.msg_id if not n else f"{new.msg_id}.{n}",
                group.targets[start : start + EMIT_CHUNK],
                group.messages[start : start + EMIT_CHUNK],
                group.state.keys.emitted(new.key, n) if new.key is not None else "",
                listed if not n else "",
            )
            steps.append((group.state, step))
    return steps


def run(new: StoredEvent, groups: Sequence[Group]) -> Emitted:
    """Store `groups` step by step; what was placed, in the groups' order of targets."""
    steps = plan(new, groups)
    lead = steps[0][0]
    throttle = new.throttle
    throttle_key = lead.keys.throttle(new.event, throttle[0]) if throttle else ""
    base = EmitArgs(
        listed_json="",
        throttle_s=throttle[1] if throttle else 0,
        msg_id=new.msg_id,
        event=new.event,
        ts=new.timestamp,
        site=lead.settings.site_url,
        data=new.data_json,
        queue=new.queue,
        n=0,
        fingerprint=new.fingerprint,
        traceparent=new.traceparent,
        nonce=new.nonce,
    )
    first: Emitted | None = None
    placed: list[Placed] = []
    ran: list[Target] = []  # the targets of the steps that ran, as `placed`
    for n, (state, step) in enumerate(steps):
        if first is not None and first.duplicate_of is not None:
            # the same key again: a later step completes only the first emit's own
            step = step.only({i for i, _ in first.duplicate_of})
            if not step.targets:
                continue
        try:
            found = state.emit_step(step, base, throttle_key if not n else "")
        except (NotSent, MaybeSent, redis.exceptions.OutOfMemoryError) as exc:
            if first is None:
                raise
            # the steps before ran: the emit is partly stored, and emitting it again with its
            # key completes it (emit says so), so it is never "nothing was enqueued" (nor is
            # a full Redis met by a later step: RedisFull says so); what they queued is said,
            # for its messages to be published all the same
            cause = exc if isinstance(exc, redis.RedisError) else exc.__cause__
            raise MaybeSent(cause, stored=_queued(ran, placed)) from cause
        if first is None:
            first = found
            if found.throttled:
                return found
        ran += step.targets
        if found.duplicate_of is not None:  # a later step made before: its own marker
            placed += [Placed.DUPLICATE] * len(step.targets)
        else:
            placed += found.placed
    assert first is not None
    if first.duplicate_of is not None:
        # the steps its first emit never ran (it stopped between two) ran now: their
        # deliveries' messages are this emit's to publish
        return replace(first, completed=_queued(ran, placed))
    return Emitted(placed=tuple(placed))


def _queued(targets: Sequence[Target], placed: Sequence[Placed]) -> tuple[str, ...]:
    return tuple(t.delivery_id for t, p in zip(targets, placed, strict=True) if p == Placed.QUEUED)
