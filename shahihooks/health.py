"""Each endpoint's health, as the dashboard and `/metrics` show it.

A STAND-IN (the dashboard branch): the lead's per-endpoint health (adaptive concurrency
limit, circuit breaker, auto-disable) replaces the bodies here, keeping the names. Until
then an endpoint is "disabled" when the store says so, else "ok"; its last success, last
error and since when it fails are read off the recent delivery log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shahihooks.connections import state_redis
from shahihooks.endpoints import EndpointStore
from shahihooks.keys import Keys, url_tag
from shahihooks.safety import redact_url
from shahihooks.settings import Settings

STATES = ("ok", "limited", "open", "disabled")
_LOG_SCAN = 2000  # recent log entries read for last success / last error


@dataclass(frozen=True)
class EndpointHealth:
    url: str  # masked (redact_url), as shown everywhere
    tag: str  # keys.url_tag(url)
    state: str  # "ok" | "limited" | "open" | "disabled"
    limit: int  # current adaptive limit on attempts in flight (0: none)
    in_flight: int
    open_until: float | None  # unix seconds, circuit open until
    disabled_since: float | None
    disabled_reason: str
    failing_since: float | None
    last_success_at: float | None
    last_error: str

    @property
    def up(self) -> bool:
        """False while nothing is sent to it: its circuit open, or it is disabled."""
        return self.state not in ("open", "disabled")


@dataclass
class _Seen:
    """What the recent log says about one URL (newest entries are read first)."""

    last_success_at: float | None = None
    last_error: str = ""
    failing_since: float | None = None


def _recent(settings: Settings) -> dict[str, _Seen]:
    """Per shown URL: its last success, last error and the start of its current failures."""
    raw: Any = state_redis(settings).xrevrange(Keys(settings.prefix).log, count=_LOG_SCAN)
    seen: dict[str, _Seen] = {}
    for _, fields in raw:
        row = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        one = seen.setdefault(row.get("url", ""), _Seen())
        at = float(row.get("ts") or 0)
        if row.get("outcome") == "delivered":
            one.last_success_at = one.last_success_at or at
        elif row.get("outcome") in ("retry", "dead") and one.last_success_at is None:
            one.last_error = one.last_error or row.get("error", "")
            one.failing_since = at  # the oldest failure after the last success
    return seen


def endpoint_health(settings: Settings, urls: Iterable[str]) -> list[EndpointHealth]:
    """The health of each URL (unmasked URLs in, masked out), in the order given."""
    stored = {e.url: e for e in EndpointStore(state_redis(settings), settings).all()}
    recent = _recent(settings)
    out = []
    for url in dict.fromkeys(urls):
        shown = redact_url(url)
        endpoint = stored.get(url)
        disabled = endpoint is not None and not endpoint.enabled
        seen = recent.get(shown, _Seen())
        out.append(
            EndpointHealth(
                url=shown,
                tag=url_tag(url),
                state="disabled" if disabled else "ok",
                limit=0,
                in_flight=0,
                open_until=None,
                disabled_since=None,
                disabled_reason="disabled in the endpoint store" if disabled else "",
                failing_since=seen.failing_since,
                last_success_at=seen.last_success_at,
                last_error=seen.last_error,
            )
        )
    return out


def enable(settings: Settings, url: str, recover: bool = False) -> int:
    """Enable the endpoint (if it is in the store); with `recover`, replay its dead letters
    in the order they died. Returns how many were replayed."""
    from shahihooks import dead

    store = EndpointStore(state_redis(settings), settings)
    if store.get(url) is not None:
        store.set_enabled(url, True)
    if not recover:
        return 0
    tag = url_tag(url)
    client = state_redis(settings)
    keys = Keys(settings.prefix)
    replayed = 0
    for delivery_id in dead.list_ids(settings, limit=1_000_000):
        if client.hget(keys.dead(delivery_id), "tag") == tag.encode():
            replayed += dead.replay(delivery_id, settings)
    return replayed
