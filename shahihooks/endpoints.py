"""Endpoints: the configured URLs, the `webhook_urls` filter, and the runtime store in Redis.

A URL is an endpoint's identity. The runtime store (`shahihooks endpoints add ...`) may give
an endpoint its own events, secrets, rate limit, enabled flag and body style; a URL in both
the settings and the store takes the store's values.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shahihooks import copies, health, shards
from shahihooks.bodystyle import BodyStyle, body_style
from shahihooks.errors import ConfigurationError, ShahihooksError
from shahihooks.events import check_name
from shahihooks.hooks import ACTION_SCHEME, Hooks
from shahihooks.keys import Keys, url_tag
from shahihooks.safety import check_target, check_url, redact_url
from shahihooks.settings import Settings
from shahihooks.signing import secret_keys


@dataclass(frozen=True)
class Endpoint:
    url: str
    events: tuple[str, ...] | None = None  # None: every event
    secrets: tuple[str, ...] = ()  # empty: the global secret
    rate_limit: int | None = None  # None: SHAHIHOOKS_RATE_LIMIT
    enabled: bool = True
    description: str = ""
    body_style: BodyStyle | str = BodyStyle.STANDARD  # "php": what the page's PHP handler signs
    concurrency: int | None = None  # its own ceiling on attempts in flight (None: the setting)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_style", body_style(self.body_style))

    def __repr__(self) -> str:
        """The endpoint with its URL redacted and its secrets as ***."""
        return (
            f"Endpoint(url={redact_url(self.url)!r}, events={self.events!r}, "
            f"secrets={tuple('***' for _ in self.secrets)!r}, rate_limit={self.rate_limit!r}, "
            f"enabled={self.enabled!r}, description={self.description!r}, "
            f"concurrency={self.concurrency!r})"
        )

    def wants(self, event: str) -> bool:
        """Subscribed to `event` (enabled or not: a disabled endpoint's deliveries are
        dead-lettered, replayable, not skipped)."""
        return self.events is None or event in self.events

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Endpoint:
        data: dict[str, Any] = json.loads(raw)
        events = data.get("events")
        return cls(
            url=data["url"],
            events=tuple(events) if events is not None else None,
            secrets=tuple(data.get("secrets") or ()),
            rate_limit=data.get("rate_limit"),
            enabled=bool(data.get("enabled", True)),
            description=data.get("description", ""),
            body_style=data.get("body_style", BodyStyle.STANDARD),
            concurrency=data.get("concurrency"),
        )

    def redacted(self) -> dict[str, Any]:
        """The endpoint as shown to people and scripts: secrets counted, never shown."""
        shown = asdict(self)
        shown["url"] = redact_url(self.url)
        shown["secrets"] = f"{len(self.secrets)} own" if self.secrets else "global"
        return shown


CACHE_S = 1.0
_cache: dict[tuple[int, str], tuple[float, list[Endpoint]]] = {}


def stored_endpoints(
    client: redis.Redis, settings: Settings, keys: Keys | None = None
) -> list[Endpoint]:
    """The runtime endpoints, read at most once a second per process (emit's hot path).

    Changes made in this process are seen at once; changes from another process (the CLI)
    within `CACHE_S`. `keys`: a shard's (shards.py) rather than the settings' prefix.
    """
    key = (id(client), (keys or Keys(settings.prefix)).endpoints)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    found = [Endpoint.from_json(v) for v in client.hvals(key[1])]
    _cache[key] = (now, found)
    return found


def forget_cached() -> None:
    _cache.clear()


class EndpointStore:
    """The runtime endpoints, one Redis hash: url -> JSON. In a Redis Cluster, one in every
    shard (begin.lua reads its own shard's), written to all with a version (copies.py),
    read from the first (by emit: the first whose primary answers)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.key = Keys(settings.prefix).endpoints

    def _places(self) -> list[tuple[redis.Redis, Keys]]:
        if not self.settings.redis_cluster:
            return [(self.client, Keys(self.settings.prefix))]
        return [(state.client, state.keys) for state in shards.shards(self.settings)]

    def all(self) -> list[Endpoint]:
        client, keys = self._places()[0]
        raw = client.hgetall(keys.endpoints)
        return sorted((Endpoint.from_json(v) for v in raw.values()), key=lambda e: e.url)

    def get(self, url: str) -> Endpoint | None:
        client, keys = self._places()[0]
        raw = client.hget(keys.endpoints, url)
        return Endpoint.from_json(raw) if raw else None

    def _write(self, url: str, endpoint: Endpoint | None, release: bool = False) -> int:
        """`url` set to `endpoint` (None: removed) in every place; how many had it. With
        `release`, its backlog is looked at now (a changed limit applies at once). In a
        Cluster each copy gets the next version; copies left behind by a write cut short
        are brought up to the newest first (copies.py), so this write lands on alike copies."""
        places = self._places()
        version = self._next_version(places) if len(places) > 1 else None
        found = 0
        for client, keys in places:
            pipe = client.pipeline(transaction=True)
            if endpoint is None:
                pipe.hdel(keys.endpoints, url)
            else:
                pipe.hset(keys.endpoints, url, endpoint.to_json())
            if endpoint is not None and release:
                pipe.zadd(keys.releases, {url_tag(url): 0}, xx=True, lt=True)
            if version is not None:
                pipe.set(keys.endpoints_version, version)
            found += int(pipe.execute()[0])
        forget_cached()
        return found

    def _next_version(self, places: list[copies.Place]) -> int:
        found = copies.versions(places)
        if len(set(found)) > 1:
            self.sync()
        return max(found) + 1

    def sync(self) -> copies.Synced:
        """In a Cluster, the newest copy written over the copies that differ from it (those
        a write reached meanwhile left as it made them: `skipped`). An endpoint whose entry
        changed gets its own limit on attempts in flight again (a write cut short may not
        have set it)."""
        synced = copies.sync(self._places())
        forget_cached()
        for url in synced.changed:
            entry = synced.best.entries.get(url.encode())
            if entry is not None:
                health.set_limit(self.settings, url, Endpoint.from_json(entry).concurrency)
        return synced

    def add(self, endpoint: Endpoint) -> Endpoint:
        check_target(endpoint.url, self.settings)
        for event in endpoint.events or ():
            check_name(event)
        if endpoint.rate_limit is not None and endpoint.rate_limit < 0:
            raise ConfigurationError(f"rate limit {endpoint.rate_limit} must not be negative")
        if endpoint.concurrency is not None and endpoint.concurrency < 1:
            raise ConfigurationError(
                f"concurrency {endpoint.concurrency} must be at least 1 (attempts in flight)"
            )
        check_secrets(endpoint, self.settings)
        self._write(endpoint.url, endpoint, release=True)
        health.set_limit(self.settings, endpoint.url, endpoint.concurrency)
        return endpoint

    def remove(self, url: str) -> bool:
        return bool(self._write(url, None))

    def set_enabled(self, url: str, enabled: bool, recover: bool = False) -> int:
        """Enable or disable `url` (of the store or of the settings: its health lives in
        Redis); with `recover`, replay what it collected while failing or disabled. Returns
        how many dead letters were replayed."""
        found = self.get(url)
        if found is None and url not in (*self.settings.urls, *self.settings.ops_urls):
            raise ConfigurationError(
                f"no endpoint {redact_url(url)!r} in the store or SHAHIHOOKS_URLS "
                "(see: endpoints list)"
            )
        if found is not None and found.enabled != enabled:
            self._write(url, Endpoint(**{**asdict(found), "enabled": enabled}))
        if not enabled:
            health.disable(self.settings, url)
            return 0
        return health.enable(self.settings, url, recover=recover)


def check_secrets(endpoint: Endpoint, settings: Settings) -> None:
    """Refuse an endpoint with no secret at all, or with one too short to sign with."""
    shown = redact_url(endpoint.url)
    if not endpoint.secrets and not settings.secret:
        raise ConfigurationError(
            f"endpoint {shown!r} has no secret and SHAHIHOOKS_SECRET is not set: "
            "give it its own (endpoints add --secret) or set the global secret"
        )
    if endpoint.secrets:
        secret_keys(endpoint.secrets, f"the secret of endpoint {shown!r} (--secret)")


def settings_urls(event: str, settings: Settings, hooks: Hooks) -> list[str]:
    """The URLs of the settings that receive `event`: SHAHIHOOKS_URLS (if it is one of
    SHAHIHOOKS_EVENTS), as the `webhook_urls` filters change them."""
    selected = settings.events is None or event in settings.events
    return hooks.filter_urls(list(settings.urls) if selected else [], event)


def endpoints_for(
    event: str, settings: Settings, stored: list[Endpoint], hooks: Hooks
) -> list[Endpoint]:
    """The endpoints that receive `event`, actions last. No name is resolved here: an
    endpoint's DNS is its own delivery's business (checked at connect), never the emit's."""
    by_url = {e.url: e for e in stored}
    chosen: dict[str, Endpoint] = {}
    for url in settings_urls(event, settings, hooks):
        chosen.setdefault(url, by_url.get(url) or Endpoint(url))
    for endpoint in stored:
        chosen.setdefault(endpoint.url, endpoint)
    targets = [e for e in chosen.values() if e.wants(event)]
    for endpoint in targets:
        check_secrets(endpoint, settings)  # no secret at all: the configuration is wrong
    return targets + [Endpoint(t, rate_limit=0) for t in hooks.action_targets(event)]


def target_refusal(endpoint: Endpoint, settings: Settings) -> str:
    """Why `endpoint` may not be sent to (its scheme, its literal address), or ''. Its own
    delivery is dead-lettered with the reason; the emit goes on for the others."""
    if is_action(endpoint.url):
        return ""
    try:
        check_url(endpoint.url, settings)
    except ShahihooksError as exc:
        return f"refused: {exc}"
    return ""


def is_action(url: str) -> bool:
    return url.startswith(ACTION_SCHEME)
