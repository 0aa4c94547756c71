"""The Python↔Lua contract: what each script of `lua/` takes and returns, by name.

Every call's arguments are a NamedTuple here; its fields are, in order, the script's
positions after the common ones, and the same names are the Lua locals the script reads
(`library()` declares them at the head of each script's function: nothing in a script reads
`ARGV[n]` itself). A script that takes a variable part after its fixed one (emit's targets
and messages, finish's log pairs, unpublished's messages) finds it from `REST` on; emit's
targets are read with `target(i)`, built from `EmitTarget`. What scripts answer is parsed
into the values of statetypes.py, once.

The names of a delivery record's fields (`Field`, single letters in Redis), of its stages
(`Stage`), of an endpoint's health fields (`HealthField`) and of the common arguments
(`Common`) are mirrored once in `lua/prelude.lua` (`F`, `STAGE`, `HF`: the Lua reads and
writes by the lower-case member names, `d.url_tag`, `F.stage`, `STAGE.queued`);
tests/test_contract.py checks that both sides agree.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from enum import StrEnum
from importlib import resources
from typing import Any, NamedTuple

import redis

from shahihooks.settings import Settings
from shahihooks.timings import grace_s, lease_s


class Field(StrEnum):
    """A delivery record's fields ({p}:dlv:{id}), as stored (lua/prelude.lua `F`)."""

    MESSAGE = "m"  # its body's message id
    URL_TAG = "u"
    EVENT = "e"
    ATTEMPT = "a"
    STAGE = "s"  # a Stage
    TOKEN = "p"  # noqa: S105 (the fencing token of its live message)
    SINCE = "t"  # when it entered its stage (ms)
    ORDER = "o"  # emit order
    WINDOW = "w"  # the rate window it was admitted in
    CHECKS = "c"  # checks of a queued message
    SOURCE = "src"  # "store", "urls", "ops" or "" (see Target)
    BUGS = "b"  # attempts that hit a bug
    SLOT = "sl"  # a slot given by its backlog's release: "1", "probe" or ""
    LOST = "l"  # messages of it found lost


class Stage(StrEnum):
    """A delivery record's stage (`Field.STAGE`; lua/prelude.lua `STAGE`)."""

    QUEUED = "q"  # a message is in the broker
    SENDING = "x"  # an attempt holds it
    WAITING = "w"  # for a retry
    DUE = "n"  # for admission
    ADMITTED = "r"  # due for a message
    BACKLOG = "b"  # in its URL's backlog


class HealthField(StrEnum):
    """An endpoint's health fields ({p}:ep:{tag}), as stored (lua/prelude.lua `HF`)."""

    LIMIT = "cw"  # on attempts in flight (a float: it grows by fractions)
    SLOW_START = "ss"  # below it the limit grows by one per success, above by 1/limit
    CEILING = "max"  # the endpoint's own (`endpoints add --concurrency`)
    FAILURES = "cf"  # in a row
    OPEN_UNTIL = "open"  # the circuit (ms; 0: closed)
    OPENINGS = "opens"  # in a row (the cool-down doubles with each)
    PROBE = "probe"  # the delivery sent while half-open
    PROBE_UNTIL = "pu"  # until when it counts as the probe (ms)
    FAILING_SINCE = "fs"  # ms
    DISABLED_SINCE = "off"  # ms
    DISABLED_REASON = "why"
    QUIET = "quiet"  # '1': an operational endpoint (no operational event is about it)
    LAST_ERROR = "err"
    LAST_ATTEMPT = "at"  # its end (ms)
    LAST_SUCCESS = "ok"  # ms


class Common(NamedTuple):
    """The settings every call begins with (ARGV[1], `packed`; prelude.lua `setup` reads them)."""

    prefix: str
    lease_ms: int
    grace_ms: int
    limit: int  # the default rate limit
    window_ms: int
    backlog_max: int
    done_ttl: int  # s
    log_max: int
    stats_ttl: int  # s
    ceiling: int  # attempts in flight to one endpoint, at most
    threshold: int  # failures in a row that open a circuit
    cooldown_ms: int
    cooldown_max_ms: int
    disable_ms: int  # 0: never
    dead_ttl_ms: int

    @classmethod
    def of(cls, settings: Settings) -> Common:
        return cls(
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
        )

    def packed(self) -> str:
        """The one argument they travel in, joined by NUL: the Lua compares it with the call
        before's and reads it again only when it differs."""
        return "\0".join(str(value) for value in self)


class EmitArgs(NamedTuple):
    """Then n x EmitTarget, then n messages (none when `queue` is '')."""

    listed_json: str  # [[id, url], ...] of the whole emit (what a duplicate answers)
    throttle_s: int
    msg_id: str
    event: str
    ts: int
    site: str
    data: str
    queue: str  # the broker's list to push the messages onto, or ''
    n: int
    fingerprint: str
    traceparent: str
    nonce: str  # the same for every try of one emit


class EmitTarget(NamedTuple):
    delivery_id: str
    url_tag: str
    url: str
    shown_url: str
    limit: int
    src: str
    refused: str


class BeginArgs(NamedTuple):
    delivery_id: str
    token: int


class FinishArgs(NamedTuple):
    """Then n_log pairs: the log entry (logline.py)."""

    delivery_id: str
    token: int
    kind: str  # a Finished
    delay_ms: int
    status: str
    reason: str
    response: str
    stats_prefix: str
    duration_ms: int
    bucket: str
    bug_max: int
    signal: str  # ok, congested, failed, or '' to learn nothing
    unacked_index: str  # the Ack, or ''
    unacked: str
    delivery_tag: str
    again: str  # '1': this step was sent before and its answer lost
    n_log: int


class ClaimArgs(NamedTuple):
    budget: int


class UnpublishedArgs(NamedTuple):
    """Then (delivery_id, token) pairs."""


class ReplayArgs(NamedTuple):
    delivery_id: str
    in_order: str  # '1' or ''


class WatermarkArgs(NamedTuple):
    seen_ms: int


class EndpointArgs(NamedTuple):
    action: str  # disable, enable or limit
    url_tag: str
    arg: str  # the reason, or the ceiling
    ops: str  # '1' or ''
    url: str
    url_shown: str  # as shown (not `shown_url`: the prelude's function of that name)


class UnknownArgs(NamedTuple):
    delivery_id: str  # or ''
    raw: str
    reason: str
    keep: int


class _Layout(NamedTuple):
    args: type[tuple[Any, ...]]
    group: tuple[str, type[tuple[Any, ...]]] | None = None  # a Lua reader of repeated args


LAYOUTS: dict[str, _Layout] = {
    "emit": _Layout(EmitArgs, ("target", EmitTarget)),
    "begin": _Layout(BeginArgs),
    "finish": _Layout(FinishArgs),
    "claim": _Layout(ClaimArgs),
    "replay": _Layout(ReplayArgs),
    "watermark": _Layout(WatermarkArgs),
    "unpublished": _Layout(UnpublishedArgs),
    "endpoint": _Layout(EndpointArgs),
    "unknown": _Layout(UnknownArgs),
}
SCRIPTS = tuple(LAYOUTS)


def lua_arguments(layout: _Layout) -> str:
    """The Lua that names a script's arguments: its locals, `REST`, and a group's reader."""
    names: Sequence[str] = layout.args._fields  # type: ignore[attr-defined]
    lines = []
    if names:
        at = ", ".join(_argv("A", i) for i in range(len(names)))
        lines.append(f"local {', '.join(names)} = {at}")
    lines.append(f"local REST = A + {len(names)}")
    if layout.group:
        reader, group = layout.group
        fields: Sequence[str] = group._fields  # type: ignore[attr-defined]
        read = ", ".join(f"{f} = {_argv('at', i)}" for i, f in enumerate(fields))
        lines.append(
            f"local {reader.upper()}_STRIDE = {len(fields)}\n"
            f"local function {reader}(i)\n"
            f"  local at = REST + {len(fields)} * i\n"
            f"  return {{{read}}}\n"
            "end"
        )
    return "\n".join(lines)


def _argv(base: str, offset: int) -> str:
    return f"ARGV[{base} + {offset}]" if offset else f"ARGV[{base}]"


@functools.cache
def library() -> tuple[str, str]:
    """The Redis function library (its name, its source): the prelude, loaded once, then
    each script's body as a function, its arguments named. Named by its content, so two
    versions of shahihooks on one Redis (a rolling upgrade) each call their own."""
    lua = resources.files("shahihooks").joinpath("lua")
    prelude = lua.joinpath("prelude.lua").read_text()
    bodies = {
        name: f"{lua_arguments(layout)}\n{lua.joinpath(f'{name}.lua').read_text()}"
        for name, layout in LAYOUTS.items()
    }
    tag = hashlib.sha256((prelude + "".join(bodies.values())).encode()).hexdigest()[:12]
    name = f"shahihooks_{tag}"
    parts = [f"#!lua name={name}\n", prelude]
    for script, body in bodies.items():
        parts.append(
            f"\nredis.register_function('{name}_{script}', function(KEYS, ARGV)\n"
            f"setup(ARGV)\n{body}\nend)\n"
        )
    return name, "".join(parts)


def is_missing(exc: redis.exceptions.ResponseError) -> bool:
    """The library is not loaded (a restarted Redis without persistence forgot it)."""
    return "function not found" in str(exc).lower()


def load_library(client: Any) -> None:
    try:
        client.execute_command("FUNCTION", "LOAD", library()[1])
    except redis.exceptions.ResponseError as exc:
        if "already exists" not in str(exc):
            raise
