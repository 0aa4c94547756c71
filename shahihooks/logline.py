"""The delivery log's entries and the stats' fields: how both are written and read.

A log entry ({p}:log, a stream) is the fields of `LOG_FIELDS`, all text. Python builds an
attempt's entry (`entry`) and finish.lua writes it as given; the Lua writes the entries
only it sees (a deferral, a dead letter at emit or begin, a lost message) with
prelude.lua's `log_event`, in the same fields.

A stats field ({p}:stats:{hour} and {p}:totals, hashes) is "<url as shown> <event> <name>",
`name` one of OK, MS, DEFERRED or a latency bucket (`latency_bucket`); the URL may hold
spaces, the event and the name never do. Every attempt counts in one bucket, so the
buckets' sum is the attempts (`attempts`). COUNT holds them too, still written for the
readers of an earlier version (a rolling upgrade, a rollback: they count COUNT only); this
version reads the larger of the two. Python gives
finish.lua the prefix (`stats_prefix`); prelude.lua's `STAT` names the fields the Lua adds.
tests/test_contract.py checks that the Lua's names are these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

LOG_FIELDS = ("ts", "id", "url", "event", "attempt", "outcome", "status", "ms", "error", "next_s")
_NUMBERS: dict[str, Any] = {"ts": float, "attempt": int, "status": int, "ms": int, "next_s": float}

COUNT = "n"  # attempts, for earlier versions' readers (see `attempts`)
OK = "ok"  # delivered
MS = "ms"  # their total duration
DEFERRED = "def"  # times a delivery went to the URL's backlog (not an attempt)

LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
OVER = "inf"  # the bucket past the last edge


def bucket_name(upper: int) -> str:
    """The histogram field of the bucket whose upper edge is `upper` ms."""
    return f"le{upper}"


def latency_bucket(ms: int) -> str:
    """The histogram field an attempt's duration falls in (for p95 from aggregates)."""
    for upper in LATENCY_BUCKETS_MS:
        if ms <= upper:
            return bucket_name(upper)
    return OVER


def is_bucket(name: str) -> bool:
    return name.startswith("le") or name == OVER


def attempts(count: int, buckets: Mapping[str, int]) -> int:
    """The attempts of summed stats fields: their buckets' sum, or COUNT's (`count`) where
    it is more (fields written before the buckets carried the count alone: none so far)."""
    return max(count, sum(buckets.values()))


def entry(
    *,
    delivery_id: str,
    url: str,
    event: str,
    attempt: int,
    outcome: str,
    status: str,
    ms: int,
    error: str,
    next_s: str,
) -> dict[str, str]:
    """One attempt's log entry, as written (`url` as shown, credentials masked)."""
    fields = (f"{time.time():.3f}", delivery_id, url, event, str(attempt), outcome, status)
    return dict(zip(LOG_FIELDS, (*fields, str(ms), error, next_s), strict=True))


def read_entry(entry_id: Any, fields: Any) -> dict[str, str]:
    """An entry as the stream gives it (bytes), as text, with its stream id as `entry`."""
    row = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    row["entry"] = entry_id.decode()
    return row


def typed(row: dict[str, str]) -> dict[str, Any]:
    """An entry with numbers as numbers, and None for what it has not (no status)."""
    out: dict[str, Any] = dict(row)
    for name, kind in _NUMBERS.items():
        if name in row:
            out[name] = kind(row[name]) if row[name] else None
    return out


def error_text(row: dict[str, str]) -> str:
    """The entry's error, with when it is tried again (or released from the backlog)."""
    error = row.get("error", "")
    if row.get("next_s"):
        again = "released" if row.get("outcome") == "deferred" else "retry"
        error += f" ({again} in {row['next_s']} s)"
    return error


def stats_prefix(url: str, event: str) -> str:
    """The start of an (url, event) pair's stats fields."""
    return f"{url} {event} "


def split_stats_field(field: str) -> tuple[str, str, str]:
    """(url, event, name) of a stats field; ValueError if it is not one."""
    url, event, name = field.rsplit(" ", 2)
    return url, event, name


def stats_field(field: str) -> tuple[str, str, str] | None:
    """(url, event, name) of a stats field, or None if it is not one."""
    try:
        return split_stats_field(field)
    except ValueError:
        return None
