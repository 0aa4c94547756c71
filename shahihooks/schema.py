"""Versions of what one shahihooks writes and another reads: the state in Redis and the
delivery messages. An upgrade must never lose a delivery silently.

The state     `{p}:schema` holds its version. A worker starting on an empty state writes
              the current one; on a state without a version (written before versions were
              kept) whose keys have the types this version uses, it adopts it; on an older
              version it migrates it when a migration is known, else refuses; on a newer one
              it refuses. Whatever the version, a key of another type than this version
              keeps there (an earlier shape: WRONGTYPE at every step) makes it refuse, with
              the key's name and what to do.
Messages      `deliver(delivery_id, token, v=MESSAGE_SCHEMA)`; one without `v` is the same
              shape (version 1). Anything else (an earlier `deliver(id, url, event, attempt)`,
              a newer version) is never dropped: its delivery is dead-lettered if its record
              is found, else it is kept in `{p}:unknown` with an ERROR in the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from shahihooks.errors import IncompatibleState
from shahihooks.keys import Keys

STATE_SCHEMA = 1
MESSAGE_SCHEMA = 1
UNKNOWN_MAX = 10_000  # messages kept in `{p}:unknown` (the oldest go first)


def key_types(keys: Keys) -> dict[str, str]:
    """The keys of fixed names and the Redis type this version keeps in each."""
    return {
        keys.schedule: "zset",
        keys.releases: "zset",
        keys.urls: "hash",
        keys.retrying: "hash",
        keys.seq: "string",
        keys.watermark: "zset",
        keys.watermark_history: "zset",
        keys.endpoints: "hash",
        keys.endpoints_version: "string",
        keys.totals: "hash",
        keys.log: "stream",
        keys.dead_index: "zset",
        keys.ops: "hash",
        keys.unknown: "list",
        keys.schema: "string",
    }


def wrong_types(found: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """What is wrong with the keys' types (`found`: key -> TYPE, 'none' if absent)."""
    return [
        f"{key} is a {found[key]} (this version keeps a {kind} there)"
        for key, kind in expected.items()
        if found.get(key, "none") not in ("none", kind)
    ]


def judge_version(stored: str | None) -> int | None:
    """The state's version to write now (None: nothing to write), or IncompatibleState.
    A pure decision on `{p}:schema` as stored (None: absent)."""
    if stored is None:
        return STATE_SCHEMA  # empty, or written before versions were kept (its types checked)
    if not stored.isascii() or not stored.isdigit():
        raise IncompatibleState(f"the state's schema version is {stored!r}, not a number")
    version = int(stored)
    if version == STATE_SCHEMA:
        return None
    if version > STATE_SCHEMA:
        raise IncompatibleState(
            f"the state was written by a newer shahihooks (state schema {version}; this one "
            f"knows {STATE_SCHEMA}): upgrade this worker to the version the others run"
        )
    raise IncompatibleState(
        f"the state was written by an older shahihooks (state schema {version}; this one "
        f"runs on {STATE_SCHEMA}) and no migration from it is known: let that version's "
        "workers finish its deliveries, then start this one on an empty state (or another "
        "SHAHIHOOKS_PREFIX)"
    )


def check_state(client: redis.Redis, keys: Keys, write: bool = True) -> None:
    """Refuse (IncompatibleState) to run on a state of another shape; mark an empty or
    compatible one with this version (unless not `write`: doctor only looks). Run as a
    worker starts."""
    expected = key_types(keys)
    pipe = client.pipeline(transaction=False)
    for key in expected:
        pipe.type(key)
    found = {k: _text(t) for k, t in zip(expected, pipe.execute(), strict=True)}
    wrong = wrong_types(found, expected)
    if wrong:
        raise IncompatibleState(
            f"the state in Redis (SHAHIHOOKS_PREFIX={keys.prefix!r}) was written by an "
            f"incompatible version of shahihooks: {'; '.join(wrong)}. Every delivery step "
            "would fail with WRONGTYPE. Let the version that wrote it finish its deliveries "
            "(or `shahihooks dead list` / back up what you need), then delete those keys, or "
            "run this version under another SHAHIHOOKS_PREFIX"
        )
    stored: Any = client.get(keys.schema)
    version = judge_version(_text(stored) if stored is not None else None)
    if version is not None and write:
        client.set(keys.schema, version, nx=True)


def message_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, int] | str:
    """A deliver message's (delivery_id, token), or why it is not one this version reads."""
    version = kwargs.get("v", 1)
    if set(kwargs) - {"v"} or not isinstance(version, int) or isinstance(version, bool):
        return f"unknown message options {sorted(kwargs)!r}"
    if version != MESSAGE_SCHEMA:
        newer = "a newer" if version > MESSAGE_SCHEMA else "an older"
        return f"a message of {newer} shahihooks (message schema {version}; this one reads 1)"
    if (
        len(args) == 2
        and isinstance(args[0], str)
        and args[0]
        and isinstance(args[1], int | str)
        and str(args[1]).isdigit()
    ):
        return args[0], int(args[1])
    return (
        f"a message of an earlier shape: deliver({len(args)} arguments) where this version "
        "reads deliver(delivery_id, token)"
    )


def raw_message(args: Sequence[Any], kwargs: Mapping[str, Any], reason: str) -> str:
    """What `{p}:unknown` keeps of a message: its arguments as received, and why."""
    return json.dumps({"args": list(args), "kwargs": dict(kwargs), "reason": reason}, default=repr)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
