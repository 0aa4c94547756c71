"""What waits, per URL (its backlog, its retries), and which URLs live deliveries wait for:
read from the state for stats, `endpoints list`, doctor and the worker's startup check."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shahihooks.contract import Field
from shahihooks.statetypes import Waiting

if TYPE_CHECKING:
    from shahihooks.state import State


def per_url(state: State) -> list[Waiting]:
    """Per URL with anything waiting: its backlog and retries (for stats, list, doctor)."""
    keys, client = state.keys, state.client
    raw: Any = client.zrange(keys.releases, 0, -1, withscores=True)
    releases: dict[bytes, float] = dict(raw)
    retrying = {_text(k): int(v) for k, v in client.hgetall(keys.retrying).items()}
    tags = sorted({_text(t) for t in releases} | {t for t, n in retrying.items() if n > 0})
    if not tags:
        return []
    now_ms = state.now_ms()
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.zcard(keys.backlog(tag))
        pipe.zrange(keys.backlog(tag), 0, 0)
        pipe.hget(keys.urls, f"{tag}:shown")
    found = pipe.execute()
    heads = [found[i + 1][0] if found[i + 1] else None for i in range(0, len(found), 3)]
    pipe = client.pipeline(transaction=False)
    for head in heads:
        pipe.hget(keys.delivery(_text(head)), Field.MESSAGE) if head else pipe.echo("")
    msgs = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for msg in msgs:
        pipe.hget(keys.body(_text(msg)), "ts") if msg else pipe.echo("")
    stamps = pipe.execute()
    out = []
    for i, tag in enumerate(tags):
        size, shown = int(found[3 * i]), _text(found[3 * i + 2] or b"")
        release = releases.get(tag.encode())
        out.append(
            Waiting(
                tag=tag,
                shown_url=shown,
                backlog=size,
                retrying=retrying.get(tag, 0),
                oldest_s=time.time() - int(stamps[i]) if stamps[i] else None,
                next_release_in_s=(
                    max(0.0, (release - now_ms) / 1000) if release is not None else None
                ),
            )
        )
    return [w for w in out if w.backlog or w.retrying]


def live_urls(state: State, sample: int = 200) -> set[str]:
    """URLs that live deliveries wait for: every backlog and retry, and the schedule's
    `sample` soonest (for the worker's startup check: can it sign them?)."""
    keys, client = state.keys, state.client
    tags = {_text(t) for t in client.zrange(keys.releases, 0, -1)}
    tags |= {_text(t) for t, n in client.hgetall(keys.retrying).items() if int(n) > 0}
    ids = client.zrange(keys.schedule, 0, sample - 1)
    if ids:
        pipe = client.pipeline(transaction=False)
        for delivery_id in ids:
            pipe.hget(keys.delivery(_text(delivery_id)), Field.URL_TAG)
        tags |= {_text(t) for t in pipe.execute() if t}
    if not tags:
        return set()
    found: list[Any] = client.hmget(keys.urls, sorted(tags))
    return {_text(u) for u in found if u}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
