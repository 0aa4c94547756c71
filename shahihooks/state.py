"""The delivery state in Redis behind one typed class: a method per Lua script, its
arguments and answers as the values of contract.py.

A delivery lives in Redis from `emit` until it is delivered or dead-lettered: its record,
its body, and exactly one of — a message in the broker (queued), an attempt holding it
(sending), an entry in the schedule (waiting for a retry), a place in its URL's backlog.
Workers hold nothing that is not also here, so a killed worker loses nothing, and waits cost
the worker no memory. `contract.Field` names the record's fields; `keys.py` every key.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import redis

from shahihooks import roundtrip, steps, waiting
from shahihooks.connections import (
    OUTAGES,
    is_sentinel,
    refuse_cluster,
    server_facts,
    state_redis,
)
from shahihooks.contract import (
    SCRIPTS,
    BeginArgs,
    ClaimArgs,
    Common,
    EmitArgs,
    EndpointArgs,
    FinishArgs,
    ReplayArgs,
    UnknownArgs,
    UnpublishedArgs,
    WatermarkArgs,
    is_missing,
    library,
    load_library,
)
from shahihooks.keys import Keys, url_tag
from shahihooks.settings import Settings
from shahihooks.statetypes import (
    Ack,
    Begun,
    Claimed,
    Due,
    Emitted,
    Finish,
    Finished,
    MaybeSent,
    MessageRef,
    NotSent,
    Outcome,
    Placed,
    StoredEvent,
    Target,
    Verdict,
    Waiting,
    dues,
    emitted,
)
from shahihooks.steps import EMIT_CHUNK

# the values of contract.py that callers of State meet, importable from here too
__all__ = [
    "BUG_PAUSE_S",
    "EMIT_CHUNK",
    "SCRIPTS",
    "Ack",
    "Begun",
    "Claimed",
    "Due",
    "Emitted",
    "Finish",
    "Finished",
    "MaybeSent",
    "MessageRef",
    "NotSent",
    "Outcome",
    "Placed",
    "State",
    "StoredEvent",
    "Target",
    "Verdict",
    "Waiting",
    "library",
    "state_for",
]

logger = logging.getLogger("shahihooks.state")

BUG_TRIES = 3  # an attempt that hits a bug is tried this often, then dead-lettered
BUG_PAUSE_S = 10.0
REPLICA_WAIT_MS = 1000  # under Sentinel or in a Cluster, an emit waits this for a replica
LONELY_S = 10.0  # then, without a replica, how long before waiting for one again
_REFUSED = (  # a call refused, never run
    redis.ReadOnlyError,  # by a replica (a demoted primary)
    redis.exceptions.AskError,  # MovedError's parent: a slot moved or migrating
    redis.exceptions.ClusterDownError,  # CLUSTERDOWN: the cluster serves no command now
    redis.exceptions.TryAgainError,  # TRYAGAIN: a slot in migration, its keys split for now
)


_lonely_until: dict[tuple[str, int], float] = {}  # a primary that had no replica, by address


def _at(conn: Any) -> tuple[str, int]:
    return str(getattr(conn, "host", "")), int(getattr(conn, "port", 0) or 0)


class Route(Protocol):
    """Where one shard of a Redis Cluster lives (shards.py): its prefix, and the client of
    the primary serving its slot now."""

    prefix: str

    def client(self) -> redis.Redis: ...

    def lost(self, cause: BaseException | None = None) -> None:
        """A call met an outage or a moved slot (`cause`): look the primary up again."""


class State:
    """The delivery state of one Redis (or one shard of a Cluster: `route`) under one
    settings value."""

    def __init__(
        self, settings: Settings, client: redis.Redis | None = None, route: Route | None = None
    ) -> None:
        self.settings = settings
        self.route = route
        self._client = client or (None if route else state_redis(settings))
        prefix = route.prefix if route else settings.prefix
        self.keys = Keys(prefix)
        self.replicated = route is not None or is_sentinel(settings.redis_url)
        self._common = Common.of(settings)._replace(prefix=prefix).packed()
        # a script's key left out: '' on one Redis; in a Cluster every key a call names must
        # lie in its shard's slot, and the prefix itself is never a key (emit.lua)
        self._no_key = prefix if route else ""

    @property
    def client(self) -> redis.Redis:
        if self.route is not None:
            return self.route.client()
        assert self._client is not None
        return self._client

    def _lost(self, cause: BaseException | None) -> None:
        if self.route is not None:
            self.route.lost(cause)

    def _command(
        self, name: str, args: tuple[Any, ...], keys: Sequence[str], rest: Sequence[Any] = ()
    ) -> tuple[Any, ...]:
        function = f"{library()[0]}_{name}"
        if not keys and self.route is not None:
            # a Cluster routes and checks only the keys a call names: one of the shard's, so
            # that a primary no longer serving it answers MOVED instead of running the call
            keys = (self._no_key,)
        return ("FCALL", function, len(keys), *keys, self._common, *args, *rest)

    def _call(
        self, name: str, args: tuple[Any, ...], keys: Sequence[str] = (), rest: Sequence[Any] = ()
    ) -> list[Any]:
        """Call `lua/<name>.lua` (a function of the library): the common arguments, its own
        (`args`, a NamedTuple of contract.py), then its variable part (`rest`)."""
        command = self._command(name, args, keys, rest)
        client = self.client
        try:
            try:
                found: list[Any] = roundtrip.call(client.connection_pool, *command)
            except redis.exceptions.ResponseError as exc:
                if _cluster_down(exc):
                    raise redis.exceptions.ClusterDownError(str(exc)) from exc
                if not is_missing(exc):  # a script's own error: a bug, said as it is
                    raise
                load_library(client)  # not run: loaded now, and called again
                found = roundtrip.call(client.connection_pool, *command)
        except OUTAGES as exc:
            self._lost(exc)
            raise
        return found

    def emit(self, new: StoredEvent, targets: Sequence[Target], messages: Sequence[str]) -> Emitted:
        """Store the event and its deliveries; raises NotSent or MaybeSent on an outage.

        `messages`: one per target, when the broker is the state Redis (`new.queue`). `nonce`
        is the same for every try of one emit: a try whose first run had happened changes
        nothing and answers `again`. Stored in steps (steps.py).
        """
        return steps.run(new, [steps.Group(self, targets, messages)])

    def emit_step(self, step: steps.Step, base: EmitArgs, throttle_key: str) -> Emitted:
        args = base._replace(
            listed_json=step.listed or json.dumps([[t.delivery_id, t.url] for t in step.targets]),
            msg_id=step.msg_id,
            n=len(step.targets),
        )
        rest = [*(x for t in step.targets for x in t.args()), *step.messages]
        keys = [step.emitted_key or self._no_key, throttle_key or self._no_key]
        return emitted([_text(v) for v in self._tracked("emit", args, keys, rest)])

    def _tracked(
        self, name: str, args: tuple[Any, ...], keys: Sequence[str], rest: Sequence[Any]
    ) -> list[Any]:
        """`_call`, telling a step that never reached Redis from one that may have run."""
        command = self._command(name, args, keys, rest)
        try:
            return self._tracked_on(self.client, name, command)
        except (NotSent, MaybeSent) as exc:
            self._lost(exc.__cause__)
            raise

    def _tracked_on(self, client: redis.Redis, name: str, command: tuple[Any, ...]) -> list[Any]:
        pool = client.connection_pool
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
                    if self.replicated and time.monotonic() >= _lonely_until.get(_at(conn), 0):
                        self._wait_for_a_replica(conn, name)
                    return result
                except _REFUSED as exc:  # refused, so not run: see _REFUSED
                    raise NotSent(exc) from exc
                except redis.exceptions.ResponseError as exc:
                    if _cluster_down(exc):
                        raise MaybeSent(exc) from exc
                    if not is_missing(exc):
                        raise
                    load_library(client)  # not run: loaded now, and sent again
                except redis.RedisError as exc:
                    raise MaybeSent(exc) from exc
            raise NotSent(RuntimeError(f"the {name} script could not be loaded"))
        finally:
            pool.release(conn)

    def _wait_for_a_replica(self, conn: Any, name: str) -> None:
        """Under Sentinel or in a Cluster, an emit returns once a replica has it too: a
        failover right after does not lose it. Without a replica answering in time, it says
        so and goes on, and stops waiting for `LONELY_S` on that primary (one without replicas
        must not slow every emit: in a Cluster, its shards' steps all skip the wait)."""
        try:
            roundtrip.send(conn, "WAIT", 1, REPLICA_WAIT_MS)
            replicas = int(roundtrip.read(conn))
        except redis.RedisError as exc:
            replicas = 0
            conn.disconnect()
            logger.warning("WAIT after %s failed: %s", name, exc)
        if replicas < 1:
            _lonely_until[_at(conn)] = time.monotonic() + LONELY_S
            logger.warning(
                "no replica confirmed the %s step within %d ms: a failover now could lose it",
                name,
                REPLICA_WAIT_MS,
            )

    def begin(self, ref: MessageRef) -> Begun:
        found = self._call("begin", BeginArgs(ref.delivery_id, ref.token))
        return Begun.parse([_text(v) for v in found])

    def finish(
        self, ref: MessageRef, outcome: Outcome, ack: Ack | None = None, again: bool = False
    ) -> Finish:
        """Record the attempt's outcome (and acknowledge its message, with `ack`).

        `again`: an earlier try of this very step met an outage, so it may have run; if it
        did, this one changes nothing and answers the outcome's own kind.
        """
        log = outcome.log or {}
        index_key, record_key, delivery_tag = ack or ("", "", "")
        args = FinishArgs(
            delivery_id=ref.delivery_id,
            token=ref.token,
            kind=outcome.kind.value,
            delay_ms=int(outcome.delay_s * 1000),
            status=outcome.status,
            reason=outcome.reason,
            response=outcome.response,
            stats_prefix=outcome.stats_prefix,
            duration_ms=outcome.duration_ms,
            bucket=outcome.bucket,
            bug_max=BUG_TRIES,
            signal=outcome.signal,
            unacked_index=index_key,
            unacked=record_key,
            delivery_tag=delivery_tag,
            again="1" if again else "",
            n_log=len(log),
        )
        rest = [x for pair in log.items() for x in pair]
        found = [_text(v) for v in self._call("finish", args, rest=rest)]
        done = outcome.kind if found[0] == "again" else Finished(found[0])
        return Finish(done, bool(found[1]), dues(found[2:]))

    def claim(self, budget: int = 500) -> Claimed:
        found = [_text(v) for v in self._call("claim", ClaimArgs(budget))]
        return Claimed(dues(found[2:]), int(found[0]) / 1000, int(found[1]))

    def unpublished(self, messages: Sequence[tuple[str, int]]) -> None:
        """Messages the broker did not take: the mover publishes them again soon."""
        if messages:
            rest = [x for pair in messages for x in pair]
            self._call("unpublished", UnpublishedArgs(), rest=rest)

    def replay(self, delivery_id: str, in_order: bool = False) -> str:
        """'ok' (due at once, or with `in_order` in its endpoint's backlog at its emit order),
        'missing', 'no_body', 'live', 'no_url' or 'full' (that backlog is)."""
        args = ReplayArgs(delivery_id, "1" if in_order else "")
        return _text(self._call("replay", args)[0])

    def endpoint(
        self, action: str, url: str, shown_url: str, arg: str = "", ops: bool = False
    ) -> tuple[float | None, float | None]:
        """An operator's `action` on an endpoint's health (endpoint.lua): disable, enable or
        limit. Returns when it had started failing and when it was disabled (Unix s)."""
        args = EndpointArgs(action, url_tag(url), arg, "1" if ops else "", url, shown_url)
        found = self._call("endpoint", args)
        since, off = (_text(v) for v in found[1:3])
        return (int(since) / 1000 if since else None, int(off) / 1000 if off else None)

    def unknown(self, delivery_id: str, raw: str, reason: str, keep: int) -> str:
        """A message this version cannot read: its delivery dead-lettered ('dead') if it is
        queued here, else the message kept in `{p}:unknown` ('kept'). See schema.py."""
        return _text(self._call("unknown", UnknownArgs(delivery_id, raw, reason, keep))[0])

    def now_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def queue_seen_empty(self, at_ms: int) -> None:
        self._call("watermark", WatermarkArgs(at_ms))

    def waiting(self) -> list[Waiting]:
        """Per URL with anything waiting: its backlog and retries (for stats, list, doctor)."""
        return waiting.per_url(self)

    def live_urls(self, sample: int = 200) -> set[str]:
        """URLs that live deliveries wait for: every backlog and retry, and the schedule's
        `sample` soonest (for the worker's startup check: can it sign them?)."""
        return waiting.live_urls(self, sample)


@functools.lru_cache(maxsize=64)
def _state(pid: int, settings: Settings) -> State:
    if settings.redis_cluster:  # a State per shard: shards.py
        raise TypeError("state_for: the state is a Redis Cluster; use shards.py")
    state = State(settings)
    refuse_cluster(server_facts(state.client), "SHAHIHOOKS_REDIS_URL", settings.redis_url)
    return state


def state_for(settings: Settings) -> State:
    """This process's State for `settings` (one per process and settings value)."""
    return _state(os.getpid(), settings)


def _cluster_down(exc: redis.exceptions.ResponseError) -> bool:
    """A script stopped by a Redis Cluster: one that lost a primary (a failover), or whose
    slot is migrating (a reshard), a key it touches moved already: an outage, the script
    maybe part run. (A call runs on a migrating slot's old primary only if every key it
    names is there still: an emit naming its key's marker and its throttle's.)"""
    text = str(exc).lower()
    return "cluster is down" in text or "non local key" in text


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
