"""The delivery state in Redis behind one typed class: every Lua script, its arguments, its
results as enums and dataclasses.

A delivery lives in Redis from `emit` until it is delivered or dead-lettered: its record,
its body, and exactly one of — a message in the broker (queued), an attempt holding it
(sending), an entry in the schedule (waiting for a retry), a place in its URL's backlog.
Workers hold nothing that is not also here, so a killed worker loses nothing, and waits cost
the worker no memory. `lua/prelude.lua` describes the record; `keys.py` every key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, NamedTuple

import redis

from shahihooks import roundtrip
from shahihooks.celeryconf import grace_s, lease_s
from shahihooks.connections import is_sentinel, refuse_cluster, server_facts, state_redis
from shahihooks.keys import Keys, url_tag
from shahihooks.settings import Settings

logger = logging.getLogger("shahihooks.state")

BUG_TRIES = 3  # an attempt that hits a bug is tried this often, then dead-lettered
BUG_PAUSE_S = 10.0
REPLICA_WAIT_MS = 1000  # under Sentinel, how long an emit waits for a replica to have it
LONELY_S = 10.0  # then, without a replica, how long before waiting for one again


class Verdict(StrEnum):
    """What `begin` decided about one message."""

    GO = "go"  # the attempt holds the delivery: send it
    STALE = "stale"  # a copy, a superseded message, or a finished delivery: drop it
    BUSY = "busy"  # another copy is being sent right now: drop this one
    DEFERRED = "deferred"  # its URL's window is full: it waits in the backlog
    DEAD = "dead"  # it cannot be sent (endpoint removed, body lost): dead-lettered


class Placed(StrEnum):
    """Where `emit` put one delivery."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    DEAD = "dead"
    DUPLICATE = "duplicate"  # made by an earlier emit of the same key (a later step's)


class Finished(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    BUG = "bug"
    STALE = "stale"  # the attempt had lost its delivery (its lease ran out): only logged


@dataclass(frozen=True)
class Target:
    """One delivery of an emit, as the emit script needs it."""

    delivery_id: str
    tag: str
    url: str
    shown_url: str
    rate_limit: int
    source: str  # "store", "urls" (SHAHIHOOKS_URLS), "ops", or "" (a filter, an action)
    refused: str = ""  # why this target may not be sent to: dead-lettered at once

    def __repr__(self) -> str:
        """With the URL as shown: no credentials (error trackers capture locals)."""
        return (
            f"Target(delivery_id={self.delivery_id!r}, tag={self.tag!r}, "
            f"url={self.shown_url!r}, rate_limit={self.rate_limit!r}, "
            f"source={self.source!r}, refused={self.refused!r})"
        )


@dataclass(frozen=True)
class Emitted:
    duplicate_of: list[tuple[str, str]] | None = None  # (id, url) of the first emit
    throttled: bool = False
    placed: tuple[Placed, ...] = ()
    again: bool = False  # this emit's step had run already (its first answer was lost)


EMIT_CHUNK = 500  # endpoints one emit step stores at most (a step holds Redis ~0.1 s)


@dataclass(frozen=True)
class _Chunk:
    """One step of an emit: its body's id, its targets and their messages, its key marker."""

    msg_id: str
    targets: Sequence[Target]
    messages: Sequence[str]
    emitted_key: str
    listed: str  # every target of the emit (the first step's marker lists them all)

    def only(self, delivery_ids: set[str]) -> _Chunk:
        """This step with the targets (and their messages) of `delivery_ids` only."""
        keep = [i for i, t in enumerate(self.targets) if t.delivery_id in delivery_ids]
        return _Chunk(
            self.msg_id,
            [self.targets[i] for i in keep],
            [self.messages[i] for i in keep] if self.messages else [],
            self.emitted_key,
            self.listed,
        )


class NotSent(Exception):
    """The step never reached Redis: it did not run."""


class MaybeSent(Exception):
    """Redis stopped answering after the step was sent: it may have run."""


_AGAIN = {"q": Placed.QUEUED, "x": Placed.QUEUED, "w": Placed.QUEUED, "n": Placed.QUEUED}


@dataclass(frozen=True)
class Begun:
    verdict: Verdict
    reason: str = ""
    url: str = ""
    event: str = ""
    attempt: int = 0
    timestamp: int = 0
    site: str = ""
    data: str = ""
    endpoint_json: str = ""
    source: str = ""  # "store", "urls", "ops" or "" (see Target)
    fingerprint: str = ""  # of the secret the emitting app signs with (signing.fingerprint)
    traceparent: str = ""  # the W3C trace context of the emit (tracing.py)


@dataclass(frozen=True)
class Due:
    """A message the mover must publish."""

    delivery_id: str
    token: int
    attempt: int
    event: str
    shown_url: str


class Finish(NamedTuple):
    """What `finish` did: the outcome recorded, whether operational events now wait to be
    sent, and the messages its endpoint's backlog may now send (the freed slot, handed on)."""

    kind: Finished
    ops_waiting: bool
    released: list[Due]


@dataclass(frozen=True)
class Claimed:
    due: list[Due]
    next_in_s: float
    ops_waiting: int = 0  # operational events not sent yet


@dataclass(frozen=True)
class Outcome:
    """What `finish` records about one attempt."""

    kind: Finished
    delay_s: float = 0.0
    status: str = ""
    reason: str = ""
    response: str = ""
    stats_prefix: str = ""
    duration_ms: int = 0
    bucket: str = ""
    log: dict[str, str] | None = None
    signal: str = ""  # what the endpoint's health learns: ok, congested, failed ('' nothing)


class Ack(NamedTuple):
    """An attempt's message, to acknowledge with its outcome: kombu's unacknowledged-message
    index and record in the state Redis (the broker), and the message's delivery tag."""

    index_key: str
    record_key: str
    tag: str


@dataclass(frozen=True)
class Waiting:
    """What waits for one URL: its backlog (rate limit) and its retries."""

    tag: str
    shown_url: str
    backlog: int
    retrying: int
    oldest_s: float | None  # how long the backlog's head has waited
    next_release_in_s: float | None


SCRIPTS = (
    "emit",
    "begin",
    "finish",
    "claim",
    "replay",
    "watermark",
    "unpublished",
    "endpoint",
    "unknown",
)


@functools.cache
def library() -> tuple[str, str]:
    """The Redis function library (its name, its source): the prelude, loaded once, then
    each script's body as a function. Named by its content, so two versions of shahihooks
    on one Redis (a rolling upgrade) each call their own."""
    lua = resources.files("shahihooks").joinpath("lua")
    bodies = {name: lua.joinpath(f"{name}.lua").read_text() for name in SCRIPTS}
    prelude = lua.joinpath("prelude.lua").read_text()
    tag = hashlib.sha256((prelude + "".join(bodies.values())).encode()).hexdigest()[:12]
    name = f"shahihooks_{tag}"
    parts = [f"#!lua name={name}\n", prelude]
    for script, body in bodies.items():
        parts.append(
            f"\nredis.register_function('{name}_{script}', function(KEYS, ARGV)\n"
            f"setup(ARGV)\n{body}\nend)\n"
        )
    return name, "".join(parts)


def _is_missing(exc: redis.exceptions.ResponseError) -> bool:
    return "function not found" in str(exc).lower()


def _load(client: Any) -> None:
    """Load the library (a restarted Redis without persistence forgot it)."""
    try:
        client.execute_command("FUNCTION", "LOAD", library()[1])
    except redis.exceptions.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


class State:
    """The delivery state of one Redis under one settings value."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or state_redis(settings)
        self.keys = Keys(settings.prefix)
        self.replicated = is_sentinel(settings.redis_url)
        self._lonely_until = 0.0
        self._common = [
            settings.prefix,
            int(lease_s(settings) * 1000),
            int(grace_s(settings) * 1000),
            settings.rate_limit,
            settings.rate_window_s * 1000,
            settings.backlog_max,
            settings.idempotency_ttl_s,
            settings.log_max_len,
            settings.stats_retention_s,
            settings.endpoint_concurrency,
            settings.circuit_threshold,
            int(settings.circuit_cooldown_s * 1000),
            int(settings.circuit_cooldown_max_s * 1000),
            settings.disable_after_s * 1000,
            settings.dead_ttl_s * 1000,
        ]

    def _command(self, name: str, args: Sequence[Any], keys: Sequence[str]) -> tuple[Any, ...]:
        function = f"{library()[0]}_{name}"
        return ("FCALL", function, len(keys), *keys, *self._common, *args)

    def _call(self, name: str, args: Sequence[Any], keys: Sequence[str] = ()) -> list[Any]:
        """Call `lua/<name>.lua` (a function of the library) with the common arguments first."""
        command = self._command(name, args, keys)
        pool = self.client.connection_pool
        try:
            found: list[Any] = roundtrip.call(pool, *command)
        except redis.exceptions.ResponseError as exc:
            if not _is_missing(exc):  # a script's own error: a bug, said as it is
                raise
            _load(self.client)  # not run: loaded now, and called again
            found = roundtrip.call(pool, *command)
        return found

    def emit(
        self,
        *,
        msg_id: str,
        event: str,
        timestamp: int,
        data_json: str,
        targets: Sequence[Target],
        messages: Sequence[str],
        queue: str,
        emitted_key: str,
        throttle_key: str,
        throttle_s: int,
        nonce: str,
        fingerprint: str = "",
        traceparent: str = "",
    ) -> Emitted:
        """Store the event and its deliveries; raises NotSent or MaybeSent on an outage.

        `nonce` is the same for every try of one emit: a try whose first run had happened
        changes nothing and answers `again`. An event for more than EMIT_CHUNK endpoints is
        stored in steps of EMIT_CHUNK (each its own copy of the body and, with a key, its own
        marker), so that no step holds Redis long; emitted again with the same key, a step
        that had not run (the process died between two) runs then, and none is lost.
        """
        listed = json.dumps([[t.delivery_id, t.url] for t in targets])
        first: Emitted | None = None
        placed: list[Placed] = []
        for start in range(0, max(1, len(targets)), EMIT_CHUNK):
            step = start // EMIT_CHUNK
            chunk = _Chunk(
                msg_id if not step else f"{msg_id}.{step}",
                targets[start : start + EMIT_CHUNK],
                messages[start : start + EMIT_CHUNK],
                emitted_key if not step or not emitted_key else f"{emitted_key}#{step}",
                listed if not step else "",
            )
            if first is not None and first.duplicate_of is not None:
                # the same key again: a later step completes only the first emit's own
                made = {i for i, _ in first.duplicate_of}
                chunk = chunk.only(made)
                if not chunk.targets:
                    continue
            found = self._emit_step(
                chunk,
                event=event,
                timestamp=timestamp,
                data_json=data_json,
                queue=queue,
                throttle_key=throttle_key if not step else "",
                throttle_s=throttle_s,
                nonce=nonce,
                fingerprint=fingerprint,
                traceparent=traceparent,
            )
            if first is None:
                first = found
                if found.throttled:
                    return found
            if found.duplicate_of is not None:  # a later step made before: its own marker
                placed += [Placed.DUPLICATE] * len(chunk.targets)
            else:
                placed += found.placed
        assert first is not None
        if first.duplicate_of is not None:
            return first
        return Emitted(placed=tuple(placed), again=first.again)

    def _emit_step(
        self,
        chunk: _Chunk,
        *,
        event: str,
        timestamp: int,
        data_json: str,
        queue: str,
        throttle_key: str,
        throttle_s: int,
        nonce: str,
        fingerprint: str,
        traceparent: str,
    ) -> Emitted:
        per_target = [
            x
            for t in chunk.targets
            for x in (
                t.delivery_id,
                t.tag,
                t.url,
                t.shown_url,
                t.rate_limit,
                t.source,
                t.refused,
            )
        ]
        args = [
            chunk.listed or json.dumps([[t.delivery_id, t.url] for t in chunk.targets]),
            throttle_s,
            chunk.msg_id,
            event,
            timestamp,
            self.settings.site_url,
            data_json,
            queue,
            len(chunk.targets),
            fingerprint,
            traceparent,
            *per_target,
            *chunk.messages,
        ]
        keys = [chunk.emitted_key, throttle_key]
        found = [_text(v) for v in self._tracked("emit", [*args, nonce], keys)]
        if found[0] == "again":
            placed = tuple(
                _AGAIN.get(s, Placed.DEFERRED if s == "b" else Placed.QUEUED) for s in found[1:]
            )
            return Emitted(placed=placed, again=True)
        if found[0] == "duplicate":
            return Emitted(duplicate_of=[(i, u) for i, u in json.loads(found[1])])
        if found[0] == "throttled":
            return Emitted(throttled=True)
        return Emitted(placed=tuple(Placed(v) for v in found[1:]))

    def _tracked(self, name: str, args: Sequence[Any], keys: Sequence[str]) -> list[Any]:
        """`_call`, telling a step that never reached Redis from one that may have run."""
        command = self._command(name, args, keys)
        pool = self.client.connection_pool
        try:
            conn: Any = pool.get_connection()
        except redis.RedisError as exc:
            raise NotSent(exc) from exc
        try:
            for _ in range(2):
                try:
                    roundtrip.send(conn, *command)
                except redis.RedisError as exc:  # a partly written command is never run
                    raise NotSent(exc) from exc
                try:
                    result: list[Any] = roundtrip.read(conn)
                    if self.replicated and time.monotonic() >= self._lonely_until:
                        self._wait_for_a_replica(conn, name)
                    return result
                except redis.ReadOnlyError as exc:  # a replica refused it (a failover)
                    raise NotSent(exc) from exc
                except redis.exceptions.ResponseError as exc:
                    if not _is_missing(exc):
                        raise
                    _load(self.client)  # not run: loaded now, and sent again
                except redis.RedisError as exc:
                    raise MaybeSent(exc) from exc
            raise NotSent(RuntimeError(f"the {name} script could not be loaded"))
        finally:
            pool.release(conn)

    def _wait_for_a_replica(self, conn: Any, name: str) -> None:
        """Under Sentinel, an emit returns once a replica has it too: a failover right after
        does not lose it. Without a replica answering in time, it says so and goes on, and
        stops waiting for `LONELY_S` (a primary without replicas must not slow every emit)."""
        try:
            roundtrip.send(conn, "WAIT", 1, REPLICA_WAIT_MS)
            replicas = int(roundtrip.read(conn))
        except redis.RedisError as exc:
            replicas = 0
            conn.disconnect()
            logger.warning("WAIT after %s failed: %s", name, exc)
        if replicas < 1:
            self._lonely_until = time.monotonic() + LONELY_S
            logger.warning(
                "no replica confirmed the %s step within %d ms: a failover now could lose it",
                name,
                REPLICA_WAIT_MS,
            )

    def begin(self, delivery_id: str, token: int) -> Begun:
        found = [_text(v) for v in self._call("begin", [delivery_id, token])]
        verdict = Verdict(found[0])
        if verdict is not Verdict.GO:
            return Begun(verdict, reason=found[1] if len(found) > 1 else "")
        url, event, attempt, ts, site, data, endpoint, source, fingerprint, trace = found[1:11]
        return Begun(
            verdict,
            "",
            url,
            event,
            int(attempt),
            int(ts),
            site,
            data,
            endpoint,
            source,
            fingerprint,
            trace,
        )

    def finish(
        self,
        delivery_id: str,
        token: int,
        outcome: Outcome,
        ack: Ack | None = None,
        again: bool = False,
    ) -> Finish:
        """Record the attempt's outcome (and acknowledge its message, with `ack`).

        `again`: an earlier try of this very step met an outage, so it may have run; if it
        did, this one changes nothing and answers the outcome's own kind.
        """
        log = outcome.log or {}
        args = [
            delivery_id,
            token,
            outcome.kind.value,
            int(outcome.delay_s * 1000),
            outcome.status,
            outcome.reason,
            outcome.response,
            outcome.stats_prefix,
            outcome.duration_ms,
            outcome.bucket,
            BUG_TRIES,
            outcome.signal,
            *(ack or ("", "", "")),
            "1" if again else "",
            len(log),
            *(x for pair in log.items() for x in pair),
        ]
        found = [_text(v) for v in self._call("finish", args)]
        done = outcome.kind if found[0] == "again" else Finished(found[0])
        return Finish(done, bool(found[1]), _dues(found[2:]))

    def claim(self, budget: int = 500) -> Claimed:
        found = [_text(v) for v in self._call("claim", [budget])]
        return Claimed(_dues(found[2:]), int(found[0]) / 1000, int(found[1]))

    def unpublished(self, messages: Sequence[tuple[str, int]]) -> None:
        """Messages the broker did not take: the mover publishes them again soon."""
        if messages:
            self._call("unpublished", [x for pair in messages for x in pair])

    def replay(self, delivery_id: str, in_order: bool = False) -> str:
        """'ok' (due at once, or with `in_order` in its endpoint's backlog at its emit order),
        'missing', 'no_body', 'live', 'no_url' or 'full' (that backlog is)."""
        return _text(self._call("replay", [delivery_id, "1" if in_order else ""])[0])

    def endpoint(
        self, action: str, url: str, shown_url: str, arg: str = "", ops: bool = False
    ) -> tuple[float | None, float | None]:
        """An operator's `action` on an endpoint's health (endpoint.lua): disable, enable or
        limit. Returns when it had started failing and when it was disabled (Unix s)."""
        found = self._call(
            "endpoint", [action, url_tag(url), arg, "1" if ops else "", url, shown_url]
        )
        since, off = (_text(v) for v in found[1:3])
        return (int(since) / 1000 if since else None, int(off) / 1000 if off else None)

    def unknown(self, delivery_id: str, raw: str, reason: str, keep: int) -> str:
        """A message this version cannot read: its delivery dead-lettered ('dead') if it is
        queued here, else the message kept in `{p}:unknown` ('kept'). See schema.py."""
        return _text(self._call("unknown", [delivery_id, raw, reason, keep])[0])

    def now_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def queue_seen_empty(self, at_ms: int) -> None:
        self._call("watermark", [at_ms])

    def waiting(self) -> list[Waiting]:
        """Per URL with anything waiting: its backlog and retries (for stats, list, doctor)."""
        keys, client = self.keys, self.client
        raw: Any = client.zrange(keys.releases, 0, -1, withscores=True)
        releases: dict[bytes, float] = dict(raw)
        retrying = {_text(k): int(v) for k, v in client.hgetall(keys.retrying).items()}
        tags = sorted({_text(t) for t in releases} | {t for t, n in retrying.items() if n > 0})
        if not tags:
            return []
        now_ms = self.now_ms()
        pipe = client.pipeline(transaction=False)
        for tag in tags:
            pipe.zcard(keys.backlog(tag))
            pipe.zrange(keys.backlog(tag), 0, 0)
            pipe.hget(keys.urls, f"{tag}:shown")
        found = pipe.execute()
        heads = [found[i + 1][0] if found[i + 1] else None for i in range(0, len(found), 3)]
        pipe = client.pipeline(transaction=False)
        for head in heads:
            pipe.hget(self.keys.delivery(_text(head)), "m") if head else pipe.echo("")
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

    def live_urls(self, sample: int = 200) -> set[str]:
        """URLs that live deliveries wait for: every backlog and retry, and the schedule's
        `sample` soonest (for the worker's startup check: can it sign them?)."""
        keys, client = self.keys, self.client
        tags = {_text(t) for t in client.zrange(keys.releases, 0, -1)}
        tags |= {_text(t) for t, n in client.hgetall(keys.retrying).items() if int(n) > 0}
        ids = client.zrange(keys.schedule, 0, sample - 1)
        if ids:
            pipe = client.pipeline(transaction=False)
            for delivery_id in ids:
                pipe.hget(keys.delivery(_text(delivery_id)), "u")
            tags |= {_text(t) for t in pipe.execute() if t}
        if not tags:
            return set()
        found: list[Any] = client.hmget(keys.urls, sorted(tags))
        return {_text(u) for u in found if u}


@functools.lru_cache(maxsize=64)
def _state(pid: int, settings: Settings) -> State:
    state = State(settings)
    refuse_cluster(server_facts(state.client), "SHAHIHOOKS_REDIS_URL", settings.redis_url)
    return state


def state_for(settings: Settings) -> State:
    """This process's State for `settings` (one per process and settings value)."""
    return _state(os.getpid(), settings)


def _dues(rows: list[str]) -> list[Due]:
    """Messages to publish, as the scripts list them: id, token, attempt, event, url each."""
    return [
        Due(rows[i], int(rows[i + 1]), int(rows[i + 2]), rows[i + 3], rows[i + 4])
        for i in range(0, len(rows), 5)
    ]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
