"""Where the state Redis's time goes inside shahihooks' scripts, script by script.

One process drives the State of this checkout against the bench's private redis-server, one
script at a time, with `INFO commandstats` reset before each: `n` emits (one endpoint each,
with an idempotency key, the rate limit on: as the throughput bench), mover steps (`claim`)
and watermark calls with those deliveries queued, then `n` begins and `n` finishes (a 200 in
2 ms, its outcome built by delivery.py, its log line and stats by logline.py, as a worker
does; the endpoint's limit of attempts in flight raised to n, so that all n can begin first). The
broker is elsewhere, as with RabbitMQ (SR): emit pushes no message, finish acknowledges
none. Per script: the FCALL's µs per call, the µs of the Redis commands it ran (Redis counts
them under their own names), so the Lua's own time (the FCALL's less its commands', the
passing of arguments and replies between Lua and Redis included), and the server's CPU per
call (INFO cpu: reading and answering the call too). One client, one call at a time: a
loaded server reads several calls per wake-up, so the CPU outside the FCALL is a ceiling.

    python -m bench.run --only luaprofile [--n 5000]    # in the bench's world
    python -m bench.luaprofile N URL                    # the driver alone (JSON on stdout)
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench import redisstats
from bench.world import PY, World

STEPS = 100  # claim and watermark calls profiled
IN_BEGIN_AND_FINISH = ("emit", "begin", "finish")  # once each per delivery (one endpoint)


def measure(world: World, n: int) -> dict[str, Any]:
    """The profile of `n` deliveries' scripts, in a subprocess against the bench's Redis."""
    world.fresh()
    found = json.loads(
        world.run([PY, "-m", "bench.luaprofile", str(n), world.url("/hook")], world.env())
    )
    scripts = summary(found)
    for name, x in scripts.items():
        print(
            f"  {name:<9} {x['calls']:>5} calls: FCALL {x['fcall_us']:.1f} µs, commands "
            f"{x['commands_us']:.1f}, Lua {x['lua_us']:.1f}; Redis CPU {x['cpu_us']:.1f} µs",
            flush=True,
        )
    return {"n": n, "phases": found, "scripts": scripts}


def summary(phases: dict[str, Any]) -> dict[str, Any]:
    """Per script, per call: µs in FCALL, in the commands inside, in Lua, Redis CPU."""
    out = {}
    for name, phase in phases.items():
        commands = phase["commands"]
        calls = commands.get("fcall", [0, 0.0])[0]
        if not calls:
            continue
        inside = {k: v for k, v in commands.items() if k not in redisstats.SCRIPT_CALLS}
        fcall_us = commands["fcall"][1] / calls
        commands_us = sum(usec for _, usec in inside.values()) / calls
        out[name] = {
            "calls": calls,
            "fcall_us": fcall_us,
            "commands_us": commands_us,
            "lua_us": fcall_us - commands_us,
            "cpu_us": phase["cpu_us"] / calls,
            "commands_per_call": sum(c for c, _ in inside.values()) / calls,
            "inside": {
                k: {"calls": c / calls, "usec_per_call": usec / c}
                for k, (c, usec) in sorted(inside.items(), key=lambda kv: -kv[1][1])
            },
        }
    return out


# -- the driver: a subprocess with the bench's environment ------------------------------------
Phase = Callable[[Any, list[Callable[[], Any]]], dict[str, Any]]


def drive(n: int, url: str, around: Phase | None = None) -> dict[str, Any]:
    """The phases' readings; `around(state, calls)` runs each phase (bench/instructions.py
    counts the server's instructions around it)."""
    from shahihooks.contract import HealthField, load_library
    from shahihooks.settings import current
    from shahihooks.state import MessageRef, State

    state = State(current())
    load_library(state.client)
    ids = [f"bench-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
    emits = [_emit_args(state, url, key) for key in ids]
    phases: dict[str, Any] = {}
    _phase = around or _read_around
    phases["emit"] = _phase(state, [lambda a=a: state.emit(*a) for a in emits])
    phases["claim"] = _phase(state, [lambda: state.claim(500)] * STEPS)
    seen = state.now_ms()
    phases["watermark"] = _phase(state, [lambda: state.queue_seen_empty(seen)] * STEPS)
    delivery_ids = [a[1][0].delivery_id for a in emits]
    # all n begin before the first finishes: the endpoint's limit of attempts in flight (2
    # at first, growing with successes) raised out of the way, as `endpoints add
    # --concurrency` would (the same commands run)
    tag = emits[0][1][0].tag
    limit = {HealthField.LIMIT.value: n + 1, HealthField.CEILING.value: n + 1}
    state.client.hset(state.keys.health(tag), mapping=limit)
    begun = []
    phases["begin"] = _phase(
        state, [lambda d=d: begun.append(state.begin(MessageRef(d, 1))) for d in delivery_ids]
    )
    outcomes = [_outcome(state, d, b) for d, b in zip(delivery_ids, begun, strict=True)]
    phases["finish"] = _phase(
        state,
        [
            lambda d=d, o=o: state.finish(MessageRef(d, 1), o)
            for d, o in zip(delivery_ids, outcomes, strict=True)
        ],
    )
    return phases


def _read_around(state: Any, calls: list[Callable[[], Any]]) -> dict[str, Any]:
    state.client.config_resetstat()
    before = redisstats.read(state.client)
    for call in calls:
        call()
    after = redisstats.read(state.client)
    return redisstats.between(before, after, len(calls))


def _emit_args(state: Any, url: str, key: str) -> tuple[Any, ...]:
    """The arguments emit.py gives State.emit for one endpoint of SHAHIHOOKS_URLS, with a key
    and the broker elsewhere."""
    from shahihooks.emit import delivery_id, message_id
    from shahihooks.keys import url_tag
    from shahihooks.payload import encode_data
    from shahihooks.safety import redact_url
    from shahihooks.signing import fingerprint
    from shahihooks.state import StoredEvent, Target

    settings = state.settings
    msg_id = message_id(key)
    data = {"ticket_id": key, "title": "Login issue", "content": "x" * 940}
    target = Target(
        delivery_id(msg_id, url), url_tag(url), url, redact_url(url), settings.rate_limit, "urls"
    )
    new = StoredEvent(
        msg_id=msg_id,
        event="ticket.created",
        timestamp=int(time.time()),
        data_json=encode_data(data),
        nonce=os.urandom(8).hex(),
        key=key,
        fingerprint=fingerprint(settings.secrets),
    )
    return new, [target], []


def _outcome(state: Any, delivery_id: str, begun: Any) -> Any:
    """What a worker's finish records for a 200 answered in 2 ms (as delivery.py builds it)."""
    from shahihooks import health
    from shahihooks.delivery import Job, recorded
    from shahihooks.outcome import classify
    from shahihooks.state import MessageRef
    from shahihooks.transport import Response

    if begun.verdict.value != "go":
        raise RuntimeError(f"begin of {delivery_id} answered {begun.verdict.value}: {begun.reason}")
    job = Job.from_begun(MessageRef(delivery_id, 1), begun)
    response = Response(200, 0.002)
    judgement = classify(response, job.attempt, state.settings.retry_policy, time.time())
    return recorded(job, response, judgement, health.signal_for(200, None))


if __name__ == "__main__":
    print(json.dumps(drive(int(sys.argv[1]), sys.argv[2])))
