"""Endpoint health: what every worker shares about each endpoint, and an operator's say on it.

Each endpoint (of the settings or the store, keyed by its URL's tag) has, in Redis
(`{p}:ep:{tag}`, its fields named by contract.HealthField; lua/prelude.lua):

    a limit on attempts in flight  adapts like TCP's congestion window: starts at 2, grows
                                   by one per success up to a threshold, then slowly (1/limit
                                   per success) up to SHAHIHOOKS_ENDPOINT_CONCURRENCY (or the
                                   endpoint's `--concurrency`); halves on a timeout, a
                                   connection error, 5xx or 429. Over it, a delivery waits in
                                   the endpoint's backlog, not in a worker slot
    a circuit                      opens after SHAHIHOOKS_CIRCUIT_THRESHOLD failures in a row:
                                   nothing is attempted; after a cool-down (30 s, doubling to
                                   10 min) one probe; a success closes it. Waiting behind it
                                   spends no attempt of a delivery's schedule
    disabling                      after SHAHIHOOKS_DISABLE_AFTER seconds of failures without a
                                   success, or by an operator: nothing more is sent, its
                                   deliveries are dead-lettered (replayable: enable --recover)

This module reads that state (`endpoint_health`), and changes it for operators (`disable`,
`enable`, `set_limit`); the decisions themselves are taken atomically in Lua, and what an
attempt teaches is `signal_for`'s pure answer.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shahihooks import dead, shards
from shahihooks.contract import HealthField
from shahihooks.keys import url_tag
from shahihooks.safety import redact_url
from shahihooks.settings import Settings
from shahihooks.state import State

INITIAL_LIMIT = 2  # as lua/prelude.lua's
STATES = ("ok", "limited", "open", "disabled")

OK = "ok"
CONGESTED = "congested"
FAILED = "failed"


def signal_for(status: int | None, error: str | None, permanent: bool = False) -> str:
    """What one attempt's answer says of its endpoint's capacity: `ok` (2xx), `congested`
    (no answer in time, no connection, 5xx, 429: the limit halves) or `failed` (any other
    failure: a 4xx, a redirect, a refused target; the endpoint is not overloaded)."""
    if status is not None and 200 <= status < 300:
        return OK
    if permanent:
        return FAILED
    if status is None or status == 429 or status >= 500:
        return CONGESTED
    return FAILED


@dataclass(frozen=True)
class EndpointHealth:
    """One endpoint's health, as shown (`endpoints list`, `stats`, `doctor`, the dashboard)."""

    url: str  # masked (redact_url), as shown everywhere
    tag: str
    state: str  # "ok" | "limited" | "open" | "disabled"
    limit: int  # the adaptive limit on attempts in flight
    in_flight: int
    open_until: float | None  # Unix s: the circuit is open (or its probe out) until then
    disabled_since: float | None
    disabled_reason: str
    failing_since: float | None
    last_success_at: float | None
    last_error: str
    consecutive_failures: int = 0
    ceiling: int = 0

    @property
    def up(self) -> bool:
        """Attempts may be made (`shahihooks_endpoint_up`): its circuit closed, enabled."""
        return self.state not in ("open", "disabled")

    def describe(self) -> str:
        """One phrase: ok, limited to N, circuit open until T, disabled since T (why)."""
        if self.state == "disabled":
            return f"disabled since {_clock(self.disabled_since)} ({self.disabled_reason})"
        if self.state == "open":
            return (
                f"circuit open until {_clock(self.open_until)} "
                f"({self.consecutive_failures} failures in a row)"
            )
        if self.state == "limited":
            return f"limited to {self.limit} in flight ({self.in_flight} now)"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "health": self.describe(),
            "limit": self.limit,
            "in_flight": self.in_flight,
            "open_until": self.open_until,
            "disabled_since": self.disabled_since,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since,
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
        }


def _clock(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else "?"


_READ = (
    HealthField.LIMIT,
    HealthField.CEILING,
    HealthField.FAILURES,
    HealthField.OPEN_UNTIL,
    HealthField.PROBE_UNTIL,
    HealthField.FAILING_SINCE,
    HealthField.LAST_SUCCESS,
    HealthField.DISABLED_SINCE,
    HealthField.DISABLED_REASON,
    HealthField.LAST_ERROR,
)


def endpoint_health(settings: Settings, urls: Iterable[str]) -> list[EndpointHealth]:
    """The health of each of `urls`, read in one pipelined round trip (per shard)."""
    read = functools.partial(_read_health, settings)
    return shards.read_each(settings, list(urls), _shard_of_url, read)


def _shard_of_url(url: str) -> int:
    return shards.shard_of_tag(url_tag(url))


def _read_health(settings: Settings, state: State, urls: list[str]) -> list[EndpointHealth]:
    now_ms = state.now_ms()
    pipe = state.client.pipeline(transaction=False)
    for url in urls:
        tag = url_tag(url)
        pipe.hmget(state.keys.health(tag), _READ)
        pipe.zcount(state.keys.in_flight(tag), now_ms, "+inf")
    found = pipe.execute()
    return [
        _health(url, found[2 * i], int(found[2 * i + 1]), now_ms, settings)
        for i, url in enumerate(urls)
    ]


def _health(
    url: str, raw: list[Any], in_flight: int, now_ms: int, settings: Settings
) -> EndpointHealth:
    f = dict(zip(_READ, (_text(v) for v in raw), strict=True))
    ceiling = int(f[HealthField.CEILING] or settings.endpoint_concurrency)
    grown = f[HealthField.LIMIT]
    limit = min(int(float(grown)) if grown else INITIAL_LIMIT, ceiling)
    open_until = _ms(f[HealthField.OPEN_UNTIL])
    open_ms = max(open_until, _ms(f[HealthField.PROBE_UNTIL]) or 0) if open_until else 0
    if f[HealthField.DISABLED_SINCE]:
        state = "disabled"
    elif open_ms:
        state = "open"
    elif limit < ceiling and (f[HealthField.FAILING_SINCE] or in_flight >= limit):
        state = "limited"
    else:
        state = "ok"
    return EndpointHealth(
        url=redact_url(url),
        tag=url_tag(url),
        state=state,
        limit=limit,
        in_flight=in_flight,
        open_until=open_ms / 1000 if open_ms else None,
        disabled_since=_seconds(f[HealthField.DISABLED_SINCE]),
        disabled_reason=f[HealthField.DISABLED_REASON],
        failing_since=_seconds(f[HealthField.FAILING_SINCE]),
        last_success_at=_seconds(f[HealthField.LAST_SUCCESS]),
        last_error=f[HealthField.LAST_ERROR],
        consecutive_failures=int(f[HealthField.FAILURES] or 0),
        ceiling=ceiling,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _ms(text: str) -> int | None:
    return int(float(text)) if text and float(text) > 0 else None


def _seconds(text: str) -> float | None:
    ms = _ms(text)
    return ms / 1000 if ms else None


def disable(settings: Settings, url: str, reason: str = "disabled by an operator") -> None:
    """Nothing more is sent to `url`: its deliveries are dead-lettered as they come up (its
    backlog at once), and so are events emitted while it is disabled."""
    _of(settings, url).endpoint("disable", url, redact_url(url), reason, _is_ops(settings, url))


def enable(settings: Settings, url: str, recover: bool = False) -> int:
    """Enable `url` again with a fresh start (circuit closed, failures forgotten); with
    `recover`, replay in emit order the dead letters it collected while it was failing or
    disabled. Returns how many were replayed."""
    state = _of(settings, url)
    failing_since, disabled_since = state.endpoint(
        "enable", url, redact_url(url), "", _is_ops(settings, url)
    )
    if not recover:
        return 0
    since = min((t for t in (failing_since, disabled_since) if t is not None), default=None)
    return recover_dead_letters(settings, url, since)


def recover_dead_letters(settings: Settings, url: str, since: float | None) -> int:
    """Replay `url`'s dead letters in emit order: those dead since `since` (Unix s), or,
    with no such time, those it collected while disabled."""
    tag = url_tag(url)
    letters = [dead.get_raw(i, settings) for i in dead.list_ids(settings, since or 0, 1_000_000)]
    chosen = [
        f
        for f in letters
        if f is not None and f.get("tag") == tag and (since is not None or f.get("off") == "1")
    ]
    chosen.sort(key=lambda f: int(f.get("o") or 0))
    state = _of(settings, url)
    return sum(state.replay(f["id"], in_order=True) == "ok" for f in chosen)


def set_limit(settings: Settings, url: str, ceiling: int | None) -> None:
    """`url`'s own ceiling on attempts in flight (None: SHAHIHOOKS_ENDPOINT_CONCURRENCY)."""
    arg = "" if ceiling is None else str(ceiling)
    _of(settings, url).endpoint("limit", url, redact_url(url), arg, _is_ops(settings, url))


def _of(settings: Settings, url: str) -> State:
    """The State of `url`'s shard: its health lives there."""
    return shards.of_shard(settings, _shard_of_url(url))


def _is_ops(settings: Settings, url: str) -> bool:
    return url in settings.ops_urls
