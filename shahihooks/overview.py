"""What the dashboard and `/metrics` read from Redis: every figure of the whole deployment.

Counters come from `{p}:totals` (never expires: attempts, successes, milliseconds and
latency buckets per URL and event since the start), charts from the hourly `{p}:stats:{hour}`
hashes, waiting work from the schedule, the backlogs and the retry counts. Every read is a
fixed number of round trips (per shard, in a Redis Cluster), whatever the traffic; the
delivery log is not read here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shahihooks import shards
from shahihooks.connections import state_redis
from shahihooks.endpoints import EndpointStore
from shahihooks.keys import Keys
from shahihooks.logline import (
    COUNT,
    LATENCY_BUCKETS_MS,
    MS,
    OK,
    OVER,
    attempts,
    bucket_name,
    is_bucket,
    stats_field,
)
from shahihooks.settings import Settings

OTHER = "(other)"  # the label of the endpoints past the cap, summed


@dataclass
class Cell:
    """Attempts, successes, total ms and the latency histogram (bucket field -> count)."""

    n: int = 0
    ok: int = 0
    ms: int = 0
    buckets: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: int) -> None:
        if name == COUNT:
            self.n += value
        elif name == OK:
            self.ok += value
        elif name == MS:
            self.ms += value
        elif is_bucket(name):
            self.buckets[name] = self.buckets.get(name, 0) + value

    def merge(self, other: Cell) -> None:
        self.n, self.ok, self.ms = self.n + other.n, self.ok + other.ok, self.ms + other.ms
        for name, value in other.buckets.items():
            self.buckets[name] = self.buckets.get(name, 0) + value

    @property
    def failed(self) -> int:
        return self.n - self.ok

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper edge in seconds, attempts at most that long), Prometheus's buckets; the
        last edge is +Inf and holds every attempt."""
        out, seen = [], 0
        for upper in LATENCY_BUCKETS_MS:
            seen += self.buckets.get(bucket_name(upper), 0)
            out.append((upper / 1000, seen))
        out.append((float("inf"), seen + self.buckets.get(OVER, 0)))
        return out

    def quantile_ms(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile (inf: over the last edge)."""
        total = sum(self.buckets.values())
        if not total:
            return None
        for upper_s, seen in self.cumulative():
            if seen >= q * total:
                return upper_s * 1000
        return float("inf")


Cells = dict[tuple[str, str], Cell]  # (shown url, event) -> cell


def cells_from_hash(raw: Mapping[Any, Any], into: Cells | None = None) -> Cells:
    """Fields "url event name" -> count, summed per (url, event)."""
    cells: Cells = {} if into is None else into
    for raw_field, raw_value in raw.items():
        text = raw_field.decode("utf-8", "replace") if isinstance(raw_field, bytes) else raw_field
        parts = stats_field(text)
        if parts is None:
            continue
        cells.setdefault((parts[0], parts[1]), Cell()).add(parts[2], int(raw_value))
    for cell in cells.values():  # the Lua counts attempts in buckets only (logline.attempts)
        cell.n = attempts(cell.n, cell.buckets)
    return cells


def by_url(cells: Cells) -> dict[str, Cell]:
    """The cells summed over events, per URL."""
    out: dict[str, Cell] = {}
    for (url, _), cell in cells.items():
        out.setdefault(url, Cell()).merge(cell)
    return out


def read_totals(settings: Settings) -> Cells:
    """Every attempt since the start, per URL (as shown) and event."""
    out: Cells = {}
    for state in shards.shards(settings):
        cells_from_hash(state.client.hgetall(state.keys.totals), out)
    return out


def read_hours(settings: Settings, hours: int, now: float | None = None) -> list[Cells]:
    """The last `hours` hourly aggregates (the current one last), one round trip per shard."""
    now = time.time() if now is None else now
    last = int(now // 3600)
    out: list[Cells] = [{} for _ in range(hours)]
    for state in shards.shards(settings):  # one round trip per shard
        pipe = state.client.pipeline(transaction=False)
        for hour in range(last - hours + 1, last + 1):
            pipe.hgetall(state.keys.stats(hour))
        for cells, raw in zip(out, pipe.execute(), strict=True):
            cells_from_hash(raw, cells)
    return out


def busiest(counts: Mapping[str, int], cap: int) -> set[str]:
    """The `cap` URLs with the most attempts (ties by URL, so the choice is stable)."""
    return set(sorted(counts, key=lambda u: (-counts[u], u))[:cap])


def capped(values: Mapping[str, Cell], keep: set[str]) -> dict[str, Cell]:
    """The cells of the kept URLs, the rest summed under OTHER (so sums stay exact)."""
    out: dict[str, Cell] = {}
    for url, cell in values.items():
        out.setdefault(url if url in keep else OTHER, Cell()).merge(cell)
    return out


def endpoint_urls(settings: Settings) -> list[str]:
    """Every endpoint's URL (unmasked): SHAHIHOOKS_URLS, then the store's."""
    stored = [e.url for e in EndpointStore(state_redis(settings), settings).all()]
    return list(dict.fromkeys([*settings.urls, *stored]))


@dataclass(frozen=True)
class Queues:
    """Work waiting now, for the whole deployment."""

    dead_letters: int
    waiting_retries: int
    backlog: dict[str, int]  # shown url -> deliveries in its backlog
    retrying: dict[str, int]  # shown url -> retries waiting
    lag_s: float  # how late the schedule's oldest due entry is (0: none due)


def read_queues(settings: Settings) -> Queues:
    """Dead letters, retries, backlogs and the schedule's lag, in two round trips (per
    shard)."""
    found = [_queues(state.client, state.keys) for state in shards.shards(settings)]
    return Queues(
        dead_letters=sum(q.dead_letters for q in found),
        waiting_retries=sum(q.waiting_retries for q in found),
        backlog={url: n for q in found for url, n in q.backlog.items()},
        retrying={url: n for q in found for url, n in q.retrying.items()},
        lag_s=max(q.lag_s for q in found),
    )


def _queues(client: Any, keys: Keys) -> Queues:
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.dead_index)
    pipe.hgetall(keys.retrying)
    pipe.zrange(keys.releases, 0, -1)
    pipe.zrange(keys.schedule, 0, 0, withscores=True)
    pipe.time()
    dead, retrying_raw, tags_raw, head, (secs, micros) = pipe.execute()
    retrying = {_text(t): int(n) for t, n in retrying_raw.items() if int(n) > 0}
    tags = sorted({_text(t) for t in tags_raw} | set(retrying))
    sizes, shown = _backlogs(client, keys, tags)
    now_ms = int(secs) * 1000 + int(micros) // 1000
    lag_ms = max(0.0, now_ms - float(head[0][1])) if head else 0.0
    return Queues(
        dead_letters=int(dead),
        waiting_retries=sum(retrying.values()),
        backlog={shown[t]: int(n) for t, n in zip(tags, sizes, strict=True) if int(n)},
        retrying={shown[t]: n for t, n in retrying.items()},
        lag_s=lag_ms / 1000,
    )


def _backlogs(client: Any, keys: Keys, tags: list[str]) -> tuple[list[int], dict[str, str]]:
    """Each tag's backlog size, and url tag -> the URL as shown (the tag if Redis has no
    record of it)."""
    if not tags:
        return [], {}
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.zcard(keys.backlog(tag))
    pipe.hmget(keys.urls, [f"{t}:shown" for t in tags])
    *sizes, found = pipe.execute()
    shown = {t: _text(s) if s else t for t, s in zip(tags, found, strict=True)}
    return [int(n) for n in sizes], shown


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
