"""Dead letters: deliveries whose retries are spent (or that could not be sent: a removed
endpoint, a full backlog), replayable with their exact body for SHAHIHOOKS_DEAD_TTL.

A dead letter shares its event's stored body (`{p}:body:{msg}`, reference-counted with the
live deliveries) instead of copying it: one large event dead at 20 URLs is stored once. A
letter written before that (no `ref` field) still holds its own copy of the body's parts.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shahihooks import shards
from shahihooks.payload import envelope
from shahihooks.settings import Settings, current
from shahihooks.state import State


@dataclass(frozen=True)
class DeadLetter:
    id: str
    url: str  # as shown: credentials masked (the URL itself stays in the state, by its tag)
    event: str
    attempts: int
    reason: str
    status: str
    died_at: float
    body: bytes  # exactly the bytes the delivery sent (b"" if Redis had lost them)
    response: str

    @classmethod
    def from_redis(cls, raw: dict[Any, Any], parts: Sequence[Any] = ()) -> DeadLetter:
        """From the letter's fields and, for a letter that shares its body, the body's
        `BODY_PARTS` (the exact bytes are rebuilt from them)."""
        f = {_text(k): _text(v) for k, v in raw.items()}
        body = b""
        if f.get("ref") == "1":
            if len(parts) == len(BODY_PARTS) and None not in parts:
                _, ts, site, data = map(_text, parts)
                body = envelope(f["id"], f["event"], int(ts), site, data)
        elif f.get("has_body") == "1":  # a letter with its own copy (an earlier version's)
            body = envelope(f["id"], f["event"], int(f["ts"]), f["site"], f["data"])
        return cls(
            id=f["id"],
            url=f["url"],
            event=f["event"],
            attempts=int(f.get("attempts") or 0),
            reason=f.get("reason", ""),
            status=f.get("status", ""),
            died_at=float(f.get("died_at") or 0),
            body=body,
            response=f.get("response", ""),
        )


BODY_PARTS = ("event", "ts", "site", "data")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def fetch(ids: Sequence[str], settings: Settings) -> list[DeadLetter]:
    """The dead letters of `ids` that exist, in order, with their bodies (two round trips
    per shard)."""
    found = shards.read_each(settings, ids, shards.shard_of_delivery, _fetch_shard)
    return [letter for letter in found if letter is not None]


def _fetch_shard(state: State, ids: list[str]) -> list[DeadLetter | None]:
    client, keys = state.client, state.keys
    pipe = client.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.hgetall(keys.dead(delivery_id))
    raws = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for raw in raws:
        if raw:
            pipe.hmget(keys.body(_text(raw.get(b"msg", b""))), BODY_PARTS)
    bodies = iter(pipe.execute())
    return [DeadLetter.from_redis(raw, next(bodies)) if raw else None for raw in raws]


def get(delivery_id: str, settings: Settings | None = None) -> DeadLetter | None:
    found = fetch([delivery_id], settings or current())
    return found[0] if found else None


def expires_at(letter: DeadLetter, settings: Settings) -> float:
    """When a dead letter goes (Unix s): SHAHIHOOKS_DEAD_TTL after its death."""
    return letter.died_at + settings.dead_ttl_s


def get_raw(delivery_id: str, settings: Settings) -> dict[str, str] | None:
    """A dead letter's stored fields, as text (its tag, emit order, why it died...)."""
    state = shards.of_delivery(settings, delivery_id)
    raw = state.client.hgetall(state.keys.dead(delivery_id))
    return {_text(k): _text(v) for k, v in raw.items()} if raw else None


def list_ids(settings: Settings | None = None, since: float = 0, limit: int = 1000) -> list[str]:
    """The ids of the dead letters that died at `since` or later, oldest first (the first
    `limit`); the shards' lists merged by the time of death, over a Cluster."""
    states = shards.shards(settings or current())
    if len(states) == 1:  # one sorted list: no scores to read, nothing to merge
        index = states[0].keys.dead_index
        return [
            _text(i)
            for i in states[0].client.zrangebyscore(index, since, "+inf", start=0, num=limit)
        ]
    per_shard = [
        state.client.zrangebyscore(
            state.keys.dead_index, since, "+inf", start=0, num=limit, withscores=True
        )
        for state in states
    ]
    merged: list[Any] = list(heapq.merge(*per_shard, key=lambda pair: pair[1]))  # by death
    return [_text(pair[0]) for pair in merged[:limit]]


def replay(delivery_id: str, settings: Settings | None = None) -> bool:
    """Send a dead letter again: same delivery id and body, a fresh attempt count.

    The delivery lives again in Redis at once (a worker's mover publishes it within a
    second), so a replay needs no broker here; False if there is no such dead letter or
    its body was lost.
    """
    settings = settings or current()
    return shards.of_delivery(settings, delivery_id).replay(delivery_id) == "ok"
