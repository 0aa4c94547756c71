"""The state Redis's instructions per script call: a figure a shared machine's load does not
move (the µs of `--only luaprofile` vary by a third from run to run).

It runs `bench.luaprofile`'s driver (the same emits, mover steps, begins and finishes, the
broker elsewhere) against a `redis-server` under valgrind's callgrind, zeroes the counts
before each phase and dumps them after it: per script, the server's instructions (Ir: the
whole process, reading and answering calls included) per call, and the commands per call.
Slow (valgrind runs Redis ~50x slower): a few hundred deliveries.

    python -m bench.instructions [N]      # N deliveries (300); needs valgrind
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

from bench import luaprofile
from bench.world import SECRET, free_port, wait

SCRIPTS = ("emit", "begin", "finish")


def count(n: int) -> dict[str, dict[str, float]]:
    """Per script: instructions and commands per call."""
    port, out = free_port(), tempfile.mkdtemp(prefix="shahihooks-callgrind-")
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out"]
    redis_server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen(
        [*valgrind, *redis_server, "--appendonly", "no", "--dir", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    os.environ.update(
        SHAHIHOOKS_REDIS_URL=url,
        SHAHIHOOKS_SECRET=SECRET,
        SHAHIHOOKS_ALLOW_HTTP="1",
        SHAHIHOOKS_ALLOW_NETWORKS="127.0.0.0/8",
        SHAHIHOOKS_RATE_LIMIT="1000000000",  # as the throughput bench: checked, never reached
        SHAHIHOOKS_URLS="http://127.0.0.1:1/hook",
    )
    wait(lambda: _pings(url), 60, "redis under valgrind", every=0.2)
    per_call: list[float] = []

    def around(state: Any, calls: list[Callable[[], Any]]) -> dict[str, Any]:
        subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True)
        found = luaprofile._read_around(state, calls)
        per_call.append(_dump(server.pid, out) / len(calls))
        return found

    try:
        phases = luaprofile.drive(n, "http://127.0.0.1:1/hook", around)
    finally:
        server.terminate()
        server.wait()
    scripts = luaprofile.summary(phases)
    return {
        name: {"instructions": ir, "commands": scripts[name]["commands_per_call"]}
        for name, ir in zip(phases, per_call, strict=True)
        if name in SCRIPTS
    }


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.ConnectionError:
        return False


def _dump(pid: int, out: str) -> int:
    """The instructions counted since the last zeroing (callgrind dumps them to a file)."""
    before = set(glob.glob(f"{out}/cg.out.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    new: list[str] = wait(lambda: sorted(set(glob.glob(f"{out}/cg.out.*")) - before), 30, "dump")
    time.sleep(0.2)  # written whole
    with open(new[0]) as dump:
        found = re.search(r"^(?:summary|totals): (\d+)", dump.read(), re.MULTILINE)
    if not found:
        raise RuntimeError(f"no totals in {new[0]}")
    return int(found.group(1))


if __name__ == "__main__":
    counted = count(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
    for name, x in counted.items():
        k = x["instructions"] / 1000
        print(f"{name:<7} {x['commands']:5.1f} commands, {k:6.1f} k instructions")
    total = sum(x["instructions"] for x in counted.values())
    commands = sum(x["commands"] for x in counted.values())
    print(f"a delivery: {commands:.1f} commands, {total / 1000:.1f} k instructions")
