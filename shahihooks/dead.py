"""Dead letters: deliveries whose retries are spent, kept with their full body, replayable."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from shahihooks.connections import redis_client
from shahihooks.delivery import message_id_of
from shahihooks.keys import Keys
from shahihooks.settings import Settings, current

_DATA_MARK = b',"data":'


@dataclass(frozen=True)
class DeadLetter:
    id: str
    url: str
    event: str
    attempts: int
    reason: str
    status: str
    died_at: float
    body: bytes
    response: str

    @classmethod
    def from_redis(cls, raw: dict[Any, Any]) -> DeadLetter:
        text = {_text(k): v for k, v in raw.items()}
        return cls(
            id=text["id"].decode(),
            url=text["url"].decode(),
            event=text["event"].decode(),
            attempts=int(text.get("attempts", b"0")),
            reason=text.get("reason", b"").decode(),
            status=text.get("status", b"").decode(),
            died_at=float(text.get("died_at", b"0")),
            body=text.get("body", b""),
            response=text.get("response", b"").decode("utf-8", "replace"),
        )


def body_parts(body: bytes) -> dict[str, Any]:
    """Split a stored envelope back into the fields the body hash holds, bytes intact."""
    at = body.index(_DATA_MARK)  # cannot occur inside an escaped JSON string
    head = json.loads(body[:at] + b"}")
    return {
        "event": head["event"],
        "ts": head["timestamp"],
        "site": head["site_url"],
        "data": body[at + len(_DATA_MARK) : -1],
    }


def get(delivery_id: str, settings: Settings | None = None) -> DeadLetter | None:
    settings = settings or current()
    raw = redis_client(settings.redis_url).hgetall(Keys(settings.prefix).dead(delivery_id))
    return DeadLetter.from_redis(raw) if raw else None


def list_ids(settings: Settings | None = None, since: float = 0, limit: int = 1000) -> list[str]:
    settings = settings or current()
    keys = Keys(settings.prefix)
    raw = redis_client(settings.redis_url).zrangebyscore(
        keys.dead_index, since, "+inf", start=0, num=limit
    )
    prefix = keys.dead("")
    return [_text(k)[len(prefix) :] for k in raw]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def replay(delivery_id: str, settings: Settings | None = None) -> bool:
    """Send a dead letter again: same delivery id and body, a fresh attempt count."""
    from shahihooks.publish import Job, publish

    settings = settings or current()
    client = redis_client(settings.redis_url)
    keys = Keys(settings.prefix)
    letter = get(delivery_id, settings)
    if letter is None or not letter.body:
        return False
    body_key = keys.body(message_id_of(delivery_id))
    pipe = client.pipeline(transaction=True)
    pipe.hset(body_key, mapping=body_parts(letter.body))  # type: ignore[arg-type]
    pipe.hincrby(body_key, "refs", 1)
    pipe.expire(body_key, settings.idempotency_ttl_s)
    pipe.delete(keys.done(delivery_id), keys.dead(delivery_id))
    pipe.zrem(keys.dead_index, keys.dead(delivery_id))
    pipe.hset(keys.pending, delivery_id, json.dumps([letter.url, letter.event, 1]))
    pipe.zadd(keys.pending_at, {delivery_id: time.time()})
    pipe.execute()
    try:
        publish([Job(delivery_id, letter.url, letter.event)])
    except Exception:
        _restore(client, keys, letter)
        raise
    return True


def _restore(client: Any, keys: Keys, letter: DeadLetter) -> None:
    """Put a dead letter back after a replay that could not be enqueued."""
    record = {
        "id": letter.id,
        "url": letter.url,
        "event": letter.event,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "status": letter.status,
        "died_at": letter.died_at,
        "body": letter.body,
        "response": letter.response,
    }
    client.hset(keys.dead(letter.id), mapping=record)
    client.zadd(keys.dead_index, {keys.dead(letter.id): letter.died_at or time.time()})
