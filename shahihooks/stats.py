"""The delivery log and the hourly stats, read back for the CLI and for apps.

Stats come from hourly aggregates (count, successes, total ms and a latency histogram per
URL and event), so "the last day" is 24 hash reads in one pipelined round trip, whatever
the traffic; p95 is read off the histogram (the upper edge of the bucket it falls in).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shahihooks import logline, shards
from shahihooks.settings import Settings
from shahihooks.state import State

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """Seconds in '90s', '30m', '24h', '7d', '2w' or a plain number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 24h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass(frozen=True)
class Row:
    url: str
    event: str
    count: int
    ok: int
    total_ms: int
    p95_ms: float | None
    deferred: int = 0  # times a delivery went to the URL's backlog (rate limit)

    @property
    def success_rate(self) -> float:
        return self.ok / self.count if self.count else 0.0

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "event": self.event,
            "count": self.count,
            "ok": self.ok,
            "success_rate": round(self.success_rate, 4),
            "avg_ms": round(self.avg_ms, 1),
            "p95_ms": self.p95_ms,
            "deferred": self.deferred,
        }


def p95_from_histogram(buckets: dict[str, int]) -> float | None:
    """The upper edge of the latency bucket holding the 95th percentile (inf: over 30 s)."""
    total = sum(buckets.values())
    if not total:
        return None
    need = 0.95 * total
    seen = 0
    for upper in logline.LATENCY_BUCKETS_MS:
        seen += buckets.get(logline.bucket_name(upper), 0)
        if seen >= need:
            return float(upper)
    return float("inf")


def read_stats(
    settings: Settings,
    since_s: float = 86_400,
    url: str | None = None,
    event: str | None = None,
    now: float | None = None,
) -> list[Row]:
    """Per URL and event over the last `since_s` seconds (whole hours, the current included)."""
    now = time.time() if now is None else now
    last = int(now // 3600)
    first = int((now - since_s) // 3600) + 1 if since_s >= 3600 else last
    hours: list[Any] = []
    for state in shards.shards(settings):  # an endpoint's stats are in its shard
        pipe = state.client.pipeline(transaction=False)
        for hour in range(first, last + 1):
            pipe.hgetall(state.keys.stats(hour))
        hours += pipe.execute()
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for hourly in hours:
        for raw_field, raw_value in hourly.items():
            row_url, row_event, name = logline.split_stats_field(raw_field.decode())
            if (url and row_url != url) or (event and row_event != event):
                continue
            cell = totals.setdefault((row_url, row_event), {})
            cell[name] = cell.get(name, 0) + int(raw_value)
    rows = []
    for (row_url, row_event), cell in sorted(totals.items()):
        buckets = {k: v for k, v in cell.items() if logline.is_bucket(k)}
        rows.append(
            Row(
                row_url,
                row_event,
                logline.attempts(cell.get(logline.COUNT, 0), buckets),
                cell.get(logline.OK, 0),
                cell.get(logline.MS, 0),
                p95_from_histogram(buckets),
                cell.get(logline.DEFERRED, 0),
            )
        )
    return rows


def waiting_by_url(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per URL (shown, credentials masked) with anything waiting: backlog, retries, times."""
    return {
        w.shown_url: {
            "waiting": w.backlog,
            "retrying": w.retrying,
            "oldest_wait_s": None if w.oldest_s is None else round(w.oldest_s, 1),
            "next_release_in_s": (
                None if w.next_release_in_s is None else round(w.next_release_in_s, 1)
            ),
        }
        for state in shards.shards(settings)
        for w in state.waiting()
    }


def describe_waiting(w: dict[str, Any]) -> str:
    """'12 in backlog (oldest 5m), next release in 40s; 3 retrying' for people."""
    parts = []
    if w["waiting"]:
        oldest = "" if w["oldest_wait_s"] is None else f" (oldest {_ago(w['oldest_wait_s'])})"
        release = w["next_release_in_s"]
        nxt = "" if release is None else f", next release in {_ago(release)}"
        parts.append(f"{w['waiting']} in backlog{oldest}{nxt}")
    if w["retrying"]:
        parts.append(f"{w['retrying']} retrying")
    return "; ".join(parts)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _matches(row: dict[str, str], url: str | None, event: str | None, failed: bool) -> bool:
    if url and row.get("url") != url:
        return False
    if event and row.get("event") != event:
        return False
    return not (failed and row.get("outcome") == "delivered")


def read_log(
    settings: Settings,
    limit: int = 50,
    url: str | None = None,
    event: str | None = None,
    failed: bool = False,
) -> list[dict[str, str]]:
    """The most recent attempts that match, oldest first (the shards' logs merged by time)."""
    found: list[dict[str, str]] = []
    for state in shards.shards(settings):
        found += _read_log(state.client, state.keys.log, limit, url, event, failed)
    found.sort(key=lambda row: _entry_time(row["entry"]))
    return found[-limit:] if limit else []


def _entry_time(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _read_log(
    client: Any, log_key: str, limit: int, url: str | None, event: str | None, failed: bool
) -> list[dict[str, str]]:
    """One log's `limit` most recent attempts that match, oldest first."""
    found: list[dict[str, str]] = []
    end = "+"
    while len(found) < limit:
        batch: Any = client.xrevrange(log_key, max=end, count=500)
        if not batch:
            break
        for entry_id, fields in batch:
            row = logline.read_entry(entry_id, fields)
            if _matches(row, url, event, failed):
                found.append(row)
                if len(found) >= limit:
                    break
        end = "(" + batch[-1][0].decode()
    return list(reversed(found))


def _newest_id(state: State) -> str:
    newest: Any = state.client.xrevrange(state.keys.log, count=1)
    return newest[0][0].decode() if newest else "0-0"


def follow_log(
    settings: Settings,
    url: str | None = None,
    event: str | None = None,
    failed: bool = False,
    block_ms: int = 1000,
    stop_after_s: float | None = None,
) -> Iterator[dict[str, str]]:
    """New attempts as they are logged (the `log --follow` tail); in a Cluster, each
    shard's log in turn, every `block_ms` (one read cannot span their slots)."""
    states = shards.shards(settings)
    block = block_ms if len(states) == 1 else None
    # each log is read from after its newest entry by id, then after the last one read: never
    # "$", which a read after an empty one would take as a new start, losing what came between
    last = [_newest_id(state) for state in states]
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    while deadline is None or time.monotonic() < deadline:
        rows: list[dict[str, str]] = []
        for k, state in enumerate(states):
            streams: Any = state.client.xread({state.keys.log: last[k]}, block=block, count=100)
            for _, entries in streams or []:
                for entry_id, fields in entries:
                    last[k] = entry_id.decode()
                    row = logline.read_entry(entry_id, fields)
                    if _matches(row, url, event, failed):
                        rows.append(row)
        yield from sorted(rows, key=lambda row: _entry_time(row["entry"]))
        if block is None and not rows:
            time.sleep(block_ms / 1000)
