"""Dead letters: deliveries whose retries are spent (or that could not be sent: a removed
endpoint, a full backlog), kept with their full body, replayable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shahihooks.connections import state_redis
from shahihooks.keys import Keys
from shahihooks.payload import envelope
from shahihooks.settings import Settings, current
from shahihooks.state import state_for


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
    def from_redis(cls, raw: dict[Any, Any]) -> DeadLetter:
        f = {_text(k): _text(v) for k, v in raw.items()}
        body = b""
        if f.get("has_body") == "1":
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


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def get(delivery_id: str, settings: Settings | None = None) -> DeadLetter | None:
    settings = settings or current()
    raw = state_redis(settings).hgetall(Keys(settings.prefix).dead(delivery_id))
    return DeadLetter.from_redis(raw) if raw else None


def get_raw(delivery_id: str, settings: Settings) -> dict[str, str] | None:
    """A dead letter's stored fields, as text (its tag, emit order, why it died...)."""
    raw = state_redis(settings).hgetall(Keys(settings.prefix).dead(delivery_id))
    return {_text(k): _text(v) for k, v in raw.items()} if raw else None


def list_ids(settings: Settings | None = None, since: float = 0, limit: int = 1000) -> list[str]:
    settings = settings or current()
    raw = state_redis(settings).zrangebyscore(
        Keys(settings.prefix).dead_index, since, "+inf", start=0, num=limit
    )
    return [_text(k) for k in raw]


def replay(delivery_id: str, settings: Settings | None = None) -> bool:
    """Send a dead letter again: same delivery id and body, a fresh attempt count.

    The delivery lives again in Redis at once (a worker's mover publishes it within a
    second), so a replay needs no broker here; False if there is no such dead letter or
    its body was lost.
    """
    settings = settings or current()
    return state_for(settings).replay(delivery_id) == "ok"
