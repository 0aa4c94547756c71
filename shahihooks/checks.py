"""What one line of the troubleshooting checklist says (Check), and the lines about Redis:
reachable; each server the configuration uses not a Cluster, never evicting, persisting
what it holds, with room left, on a clock in step with this machine's; the state's schema
and a recorded loss of it; in a Redis Cluster, the endpoint store's copies alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shahihooks import copies, shards
from shahihooks.celeryconf import redis_servers
from shahihooks.connections import (
    CLOCK_SKEW_WARN_S,
    OUTAGES,
    ServerFacts,
    clock_warning,
    cluster_client,
    cluster_primaries,
    eviction_warning,
    memory_text,
    node_address,
    persistence_warning,
    redis_client,
    refuse_cluster,
    refuse_eviction,
    server_facts,
    state_redis,
)
from shahihooks.epoch import first_loss
from shahihooks.errors import ShahihooksError
from shahihooks.keys import Keys
from shahihooks.safety import redact_url
from shahihooks.schema import STATE_SCHEMA, check_state
from shahihooks.settings import Settings


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.what}" + (
            f"\n    → {self.fix}" if self.fix else ""
        )

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "what": self.what, "fix": self.fix}


def redis_check(settings: Settings) -> Check:
    try:
        if settings.redis_cluster:  # its URL may name several nodes: not one Redis
            cluster_client(settings.redis_url).ping()
        else:
            state_redis(settings).ping()
    except Exception as exc:
        return Check(
            False,
            f"Redis at {redact_url(settings.redis_url)} does not answer: {exc}",
            "start Redis or fix SHAHIHOOKS_REDIS_URL",
        )
    return Check(True, f"Redis reachable at {redact_url(settings.redis_url)}")


def server_checks(settings: Settings) -> list[Check]:
    """The state Redis (and a Redis broker): not a Cluster, never evicting, persisting what
    it holds, with room left, on a clock in step with this machine's."""
    out = []
    for what, url in redis_servers(settings, settings.broker_url):
        cluster = settings.redis_cluster and url == settings.redis_url
        try:
            clients = (
                cluster_primaries(url) if cluster else [redis_client(url, settings.sentinel_master)]
            )
            for client in clients:
                where = f"{what} primary {node_address(client)}" if cluster else what
                out += facts_checks(server_facts(client), where, url, cluster)
        except OUTAGES as exc:
            out.append(Check(False, f"{what} does not answer: {exc}", "start it"))
    return out


def facts_checks(
    facts: ServerFacts, what: str, url: str, cluster_allowed: bool = False
) -> list[Check]:
    try:
        refuse_cluster(facts, what, url, cluster_allowed)
    except ShahihooksError as exc:
        return [Check(False, str(exc), "use one Redis (with Sentinel for failover)")]
    try:
        refuse_eviction(facts, what, url)
        evicting = eviction_warning(facts, what, url)
    except ShahihooksError as exc:
        evicting = str(exc)
    warning = persistence_warning(facts, what, url)
    skew = clock_warning(facts, what, url)
    return [
        Check(False, warning, "redis-server --appendonly yes (or in redis.conf)")
        if warning
        else Check(True, f"{what} persists (append-only, appendfsync {facts.appendfsync})"),
        Check(False, evicting, "redis-cli CONFIG SET maxmemory-policy noeviction (and redis.conf)")
        if evicting
        else Check(True, f"{what} evicts nothing ({facts.maxmemory_policy or 'policy unknown'})"),
        _memory_check(facts, what),
        Check(False, skew, "sync the clocks (NTP)")
        if skew
        else Check(True, f"clock within {CLOCK_SKEW_WARN_S:g} s of the {what}'s"),
    ]


_FULL_WARNING = 0.9


def _memory_check(facts: ServerFacts, what: str) -> Check:
    """Headroom: at maxmemory (noeviction) every emit fails with "Redis is full"."""
    used = f"{what} memory: {memory_text(facts)}"
    if not facts.maxmemory or facts.used_memory < _FULL_WARNING * facts.maxmemory:
        return Check(True, used)
    return Check(
        False,
        f'{used}: nearly full; at its maxmemory every emit fails ("Redis is full")',
        "raise maxmemory, or look for what grows: shahihooks stats, dead list",
    )


def lost_check(settings: Settings) -> Check:
    loss = first_loss(settings)
    if loss is None:
        return Check(True, "no loss of the state recorded")
    return Check(
        False,
        loss.text(),
        "make Redis persist (appendonly yes); once looked into: shahihooks doctor --ack-lost",
    )


def state_checks(settings: Settings) -> list[Check]:
    """The state's schema (written by a compatible version?), and the delivery messages
    this version could not read (schema.py), if any."""
    states = shards.shards(settings)
    try:
        for state in states:
            check_state(state.client, state.keys, write=False)
        out = [Check(True, f"state schema {STATE_SCHEMA} (this version's)")]
    except ShahihooksError as exc:
        out = [Check(False, str(exc), "see docs/upgrading.md")]
    for state in states:
        out += _unknown_check(state.client, state.keys)
    if settings.redis_cluster:
        out.append(copies_check([(s.client, s.keys) for s in states]))
    return out


def copies_check(places: list[copies.Place]) -> Check:
    """The endpoint store's copies (one per shard) alike: one that differs (a write cut
    short) gives what reads it other endpoints than the rest, silently."""
    found = copies.read(places)
    best = copies.newest(found)
    stale = copies.behind(found, best)
    if not stale:
        return Check(
            True,
            f"the endpoint store's {len(found)} copies (one per shard) are alike: "
            f"version {best.version}, {len(best.entries)} endpoint(s)",
        )
    return Check(
        False,
        f"the endpoint store's copies differ: {', '.join(c.text() for c in stale)} "
        f"differ from the newest, {best.text()}: what reads those copies (the deliveries to "
        "endpoints of those shards; an emit, when the shards before are away) sees other "
        "endpoints (a write was cut short, or a copy was edited by hand)",
        f"shahihooks endpoints sync (writes shard {best.shard}'s copy over the others)",
    )


def _unknown_check(client: redis.Redis, keys: Keys) -> list[Check]:
    out = []
    unknown = int(client.llen(keys.unknown))
    if unknown:
        out.append(
            Check(
                False,
                f"{unknown} delivery message(s) no worker could read are kept in {keys.unknown}",
                f"read them (redis-cli LRANGE {keys.unknown} 0 -1): each has its arguments and "
                "why; emit those events again or replay their dead letters, then DEL the key",
            )
        )
    return out
