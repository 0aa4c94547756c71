"""What the dashboard's pages show, read from Redis: endpoint rows, hourly series, dead letters.

Everything here is a URL as shown (credentials masked); the unmasked URL never leaves this
module except to `health.enable`, which needs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shahihooks import dead, shards
from shahihooks.health import EndpointHealth, endpoint_health
from shahihooks.keys import url_tag
from shahihooks.overview import Cell, Queues, by_url, endpoint_urls, read_hours, read_queues
from shahihooks.settings import Settings
from shahihooks.state import State

HOURS = 24  # the table's window and the charts' width
DEAD_SHOWN = 200


@dataclass(frozen=True)
class EndpointRow:
    """One line of the endpoints table: health, the last day's figures, the waiting work."""

    health: EndpointHealth
    day: Cell  # the last HOURS hours
    per_minute: float  # attempts per minute, over the last hour or two
    backlog: int
    retrying: int

    @property
    def success_rate(self) -> float | None:
        return self.day.ok / self.day.n if self.day.n else None


@dataclass(frozen=True)
class Overview:
    rows: list[EndpointRow]
    queues: Queues


def unlisted(shown_url: str) -> EndpointHealth:
    """A URL in the stats that is neither in SHAHIHOOKS_URLS nor in the store (a removed
    endpoint, a `webhook_urls` filter's): shown, with no health of its own."""
    return EndpointHealth(
        shown_url, url_tag(shown_url), "unlisted", 0, 0, None, None, "", None, None, ""
    )


def per_minute(hours: list[Cell], now: float) -> float:
    """Attempts per minute over the previous hour and this one so far."""
    minutes = 60 + (now % 3600) / 60
    return sum(c.n for c in hours[-2:]) / minutes


def overview(settings: Settings, now: float | None = None) -> Overview:
    now = time.time() if now is None else now
    hourly = [by_url(cells) for cells in read_hours(settings, HOURS, now)]
    queues = read_queues(settings)
    health = endpoint_health(settings, endpoint_urls(settings))
    known = {h.url for h in health}
    seen = sorted({u for hour in hourly for u in hour} - known)
    rows = []
    for h in [*health, *(unlisted(u) for u in seen)]:
        series = [hour.get(h.url, Cell()) for hour in hourly]
        day = Cell()
        for cell in series:
            day.merge(cell)
        rows.append(
            EndpointRow(
                h,
                day,
                per_minute(series, now),
                queues.backlog.get(h.url, 0),
                queues.retrying.get(h.url, 0),
            )
        )
    return Overview(rows, queues)


def hourly_series(settings: Settings, shown_url: str, now: float | None = None) -> list[Cell]:
    """One endpoint's last HOURS hourly cells, oldest first."""
    return [by_url(c).get(shown_url, Cell()) for c in read_hours(settings, HOURS, now)]


def find(settings: Settings, tag: str) -> EndpointRow | None:
    """The endpoints table's row with this tag."""
    for row in overview(settings).rows:
        if row.health.tag == tag:
            return row
    return None


def url_of_tag(settings: Settings, tag: str) -> str | None:
    """The unmasked URL of a tag: an endpoint's, else the one Redis recorded for it."""
    for url in endpoint_urls(settings):
        if url_tag(url) == tag:
            return url
    state = shards.of_tag(settings, tag)
    found: Any = state.client.hget(state.keys.urls, tag)
    return found.decode() if found else None


def dead_letters(settings: Settings) -> tuple[int, list[dead.DeadLetter]]:
    """How many dead letters there are, and the newest DEAD_SHOWN of them, newest first."""
    newest: list[Any] = []
    total = 0
    for state in shards.shards(settings):
        client, keys = state.client, state.keys
        newest += client.zrevrange(keys.dead_index, 0, DEAD_SHOWN - 1, withscores=True)
        total += int(client.zcard(keys.dead_index))
    newest.sort(key=lambda pair: -pair[1])  # stable: one shard's order stays as it is
    return total, dead.fetch([i.decode() for i, _ in newest[:DEAD_SHOWN]], settings)


def dead_tags(settings: Settings, ids: list[str]) -> dict[str, str]:
    """delivery id -> the url tag of its dead letter."""
    tags = shards.read_each(settings, ids, shards.shard_of_delivery, _dead_tags)
    return dict(zip(ids, tags, strict=True))


def _dead_tags(state: State, ids: list[str]) -> list[str]:
    pipe = state.client.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.hget(state.keys.dead(delivery_id), "tag")
    return [t.decode() if t else "" for t in pipe.execute()]
