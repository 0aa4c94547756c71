"""What a redis-server spent, from its own accounting: `INFO cpu` (used_cpu_sys +
used_cpu_user: the whole process, network and parsing included) and `INFO commandstats`
(calls and µs of execution per command), read before and after.

Redis counts a command a Lua script calls under its own name, and the script's own call
(FCALL, EVALSHA) for the whole run, its commands inside included: the Lua itself is the
script's µs less its commands' (bench/luaprofile.py measures that script by script). What
no command's µs holds is the rest of the CPU: reading, parsing and answering the calls, and
the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCRIPT_CALLS = ("fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro")
# the bench's own calls to the measured Redis (reading it, keeping N's queue for the next
# cell): never a system's work, their µs taken off the CPU too
MEASURING = ("info", "config|resetstat", "dump", "restore", "flushall")


@dataclass(frozen=True)
class Reading:
    cpu_us: float
    commands: dict[str, tuple[int, float]]  # command -> (calls, µs)


def read(client: Any) -> Reading:
    """One reading of `client`'s server."""
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    return Reading(
        (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])) * 1e6,
        {k.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"])) for k, v in stats.items()},
    )


def between(before: Reading, after: Reading, n: int) -> dict[str, Any]:
    """What the server spent from `before` to `after` on `n` items, as totals (JSON)."""
    commands, ours = {}, 0.0
    for name, (calls, usec) in after.commands.items():
        was_calls, was_usec = before.commands.get(name, (0, 0.0))
        if calls <= was_calls:
            continue
        if name in MEASURING:
            ours += usec - was_usec
        else:
            commands[name] = [calls - was_calls, usec - was_usec]
    return {"n": n, "cpu_us": after.cpu_us - before.cpu_us - ours, "commands": commands}


def merged(usages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Totals of several measurements (cells of rounds and setups) as one."""
    if not usages:
        return None
    commands: dict[str, list[float]] = {}
    for u in usages:
        for name, (calls, usec) in u["commands"].items():
            total = commands.setdefault(name, [0, 0.0])
            total[0] += calls
            total[1] += usec
    return {
        "n": sum(u["n"] for u in usages),
        "cpu_us": sum(u["cpu_us"] for u in usages),
        "commands": commands,
    }


def plus(total: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`total` and `other` added, `other` scaled to `total`'s number of items (the enqueue of
    some cells and the delivering of all, as one item's whole)."""
    scale = total["n"] / other["n"]
    commands = {k: list(v) for k, v in total["commands"].items()}
    for name, (calls, usec) in other["commands"].items():
        into = commands.setdefault(name, [0, 0.0])
        into[0] += calls * scale
        into[1] += usec * scale
    return {
        "n": total["n"],
        "cpu_us": total["cpu_us"] + other["cpu_us"] * scale,
        "commands": commands,
    }


def per_item(total: dict[str, Any], holds: str) -> dict[str, Any]:
    """Per item: CPU µs, commands (calls), µs executing scripts (their commands inside
    included) and other commands, each command's calls and µs per call; and the CPU outside
    any command's execution where it can be told: on a Redis holding only shahihooks' state
    (`holds` "state"), every command but the scripts' own calls runs inside a script; on a
    broker's (kombu's few scripts aside, a restore of unacknowledged messages), every command
    is the client's. Where both meet (shahihooks' state and its broker) it cannot: None."""
    n, commands = total["n"], total["commands"]
    scripts_us = sum(commands[k][1] for k in SCRIPT_CALLS if k in commands)
    others_us = sum(usec for k, (_, usec) in commands.items() if k not in SCRIPT_CALLS)
    if holds == "state":
        outside = total["cpu_us"] - scripts_us
    elif holds == "broker":
        outside = total["cpu_us"] - scripts_us - others_us
    else:
        outside = None
    return {
        "cpu_us": total["cpu_us"] / n,
        "calls": sum(calls for calls, _ in commands.values()) / n,
        "scripts_us": scripts_us / n,
        "other_commands_us": others_us / n,
        "outside_commands_us": None if outside is None else outside / n,
        "by_command": {
            k: {"calls": calls / n, "usec_per_call": usec / calls}
            for k, (calls, usec) in sorted(commands.items(), key=lambda kv: -kv[1][1])
        },
    }


def top(by_command: dict[str, dict[str, float]], count: int = 8) -> str:
    """The commands that took the most µs: calls per item, and µs per call."""
    ranked = sorted(by_command.items(), key=lambda kv: -kv[1]["calls"] * kv[1]["usec_per_call"])
    return ", ".join(
        f"{k.upper()} {v['calls']:.2f} ({v['usec_per_call']:.1f} µs)" for k, v in ranked[:count]
    )
