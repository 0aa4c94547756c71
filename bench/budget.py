"""Where a delivery's CPU goes: one worker process (threads 1x16) sampled by py-spy while it
delivers, its samples sorted into the parts of a delivery, and its CPU time per delivery
against the baselines' in the same run.

    python -m bench.budget [--n 20000] [--seconds 20] [--events]

Each system drains `n` items through one worker process; once it is warm, its CPU time
(utime + stime from /proc) and the receiver's count are read at the start and the end of a
window of `seconds`, while py-spy samples the stacks of the thread holding the GIL
(`--gil --nonblocking`: the process is never paused). A sample goes to the most specific
part any of its frames belongs to (events, signing, shahihooks' Redis steps, the HTTP
request, the mover, the rest of the attempt), else to the deepest of kombu's and Celery's
own parts. py-spy is installed into the venv when missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.systems import Naive, Noop, Setup, Shahihooks, System
from bench.world import PY, World, wait

SETUP = Setup("threads", 1, 16)
TICKS = os.sysconf("SC_CLK_TCK")


def _in(*parts: str) -> Callable[[str], bool]:
    return lambda frame: any(p in frame for p in parts)


def _ours(frame: str) -> bool:
    return ("shahihooks/" in frame and "shahihooks/broker.py" not in frame) or "naive.py" in frame


# The most specific part any frame of a sample belongs to, in this order.
SPECIFIC: list[tuple[str, Callable[[str], bool]]] = [
    ("task events (-E)", _in("celery/events/")),
    ("signing the body", _in("shahihooks/signing.py", "hmac.py")),
    ("shahihooks' Redis steps (begin, finish)", _in("shahihooks/state.py")),
    ("the HTTP request", _in("shahihooks/transport.py", "urllib3/", "requests/", "http/client")),
    ("the mover (schedule, lost-message checks)", _in("shahihooks/mover.py")),
    ("the rest of the attempt (body, outcome, log)", _ours),
]
# Else the part of the deepest frame that has one.
GENERIC: list[tuple[str, Callable[[str], bool]]] = [
    ("kombu: taking and acknowledging messages", _in("kombu/", "shahihooks/broker.py", "redis/")),
    (
        "Celery: receiving a message",
        _in("celery/worker/consumer/", "celery/worker/strategy", "celery/worker/loops"),
    ),
    ("Celery: running a task (trace, request, pool)", _in("celery/", "billiard/")),
]
OTHER = "other (threads, loop, logging)"


def part_of(stack: list[str]) -> str:
    for name, match in SPECIFIC:
        if any(match(f) for f in stack):
            return name
    for frame in reversed(stack):
        for name, match in GENERIC:
            if match(frame):
                return name
    return OTHER


def parse_raw(text: str) -> Counter[str]:
    """py-spy's raw format: `frame;frame;... count` per line, root first."""
    parts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parts[part_of(stack.split(";"))] += int(count)
    return parts


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def py_spy() -> str:
    found = Path(PY).parent / "py-spy"
    if not found.exists():
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(found)


@dataclass(frozen=True)
class Budget:
    items: int  # in the window
    rate: float  # per second
    cpu_us: float  # the worker process's CPU time per item
    parts: Counter[str]  # py-spy samples by part


def measure(world: World, system: System, n: int, seconds: float, extra: tuple[str, ...]) -> Budget:
    world.fresh()
    system.enqueue(world, n, "/hook")
    done: Callable[[], int] = (
        (lambda: int(world.received().get("count", 0)))
        if system.at_receiver
        else (lambda: n - world.pending(system.queue))
    )
    (argv,) = system.workers(SETUP, extra)
    proc = world.spawn(argv, system.env(world), system.cwd)
    try:
        wait(lambda: done() >= n // 5, 120, f"{system.name} warming up", 0.05)
        out = Path(world.tmp) / f"{system.key}.raw"
        spy = [py_spy(), "record", "--pid", str(proc.pid), "--duration", str(int(seconds))]
        spy += ["--rate", "200", "--gil", "--nonblocking", "--format", "raw", "-o", str(out)]
        sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first, cpu0, t0 = done(), cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        last, cpu1, t1 = done(), cpu_s(proc.pid), time.monotonic()
        if last >= n:
            raise RuntimeError(f"{system.name}: the queue ran dry in the window; raise --n")
        sampler.wait(timeout=60)
        parts = parse_raw(out.read_text()) if out.exists() else Counter()
    finally:
        world.halt(proc)
    items = last - first
    return Budget(items, items / (t1 - t0), (cpu1 - cpu0) / items * 1e6, parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="items enqueued per system")
    parser.add_argument("--seconds", type=float, default=20, help="the sampled window")
    parser.add_argument("--events", action="store_true", help="workers with -E")
    args = parser.parse_args()
    extra = ("-E",) if args.events else ()
    world = World()
    world.start()
    try:
        results = {
            s.key: measure(world, s, args.n, args.seconds, extra)
            for s in (Naive(), Noop(), Shahihooks())
        }
    finally:
        world.stop()
    print(f"CPU per item in one worker process ({SETUP.label}{', -E' if args.events else ''}):")
    for key, b in results.items():
        ratio = f"  {b.cpu_us / results['N'].cpu_us:.2f}x N" if key != "N" else ""
        print(f"  {key}  {b.cpu_us:7.0f} us  at {b.rate:6.1f}/s{ratio}")
    for key in ("S", "N"):
        b = results[key]
        total = sum(b.parts.values()) or 1
        print(f"\n{key}: where its {b.cpu_us:.0f} us go ({total} samples)")
        for name, count in b.parts.most_common():
            print(f"  {count / total:6.1%}  {b.cpu_us * count / total:6.0f} us  {name}")


if __name__ == "__main__":
    main()
