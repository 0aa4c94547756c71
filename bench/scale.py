"""Scaling: throughput of N, C and S by worker process count, with the same harness as
`make bench` (same receiver, same interleaving). For a machine with more cores:

    python -m bench.scale 1 2 4 8 16 [--threads 16] [--n 20000] [--rounds 2] [--peer]

Each count P runs as `threads Px<threads>`: P worker processes (one per core is the
measured best here). The receiver is one asyncio process: its ceiling, printed first,
bounds what can be measured. Results go to bench-scaling.json.
"""

from __future__ import annotations

import argparse
import sys

from bench import run
from bench.world import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("processes", nargs="+", type=int, help="worker process counts")
    parser.add_argument("--threads", type=int, default=16, help="threads per process")
    parser.add_argument("--n", type=int, default=20_000, help="deliveries per cell")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peer", action="store_true", help="django-webhook too")
    args = parser.parse_args()
    setups = ",".join(f"threads {p}x{args.threads}" for p in sorted(set(args.processes)))
    sys.argv = [
        "bench.run",
        "--only",
        "throughput",
        "--setups",
        setups,
        "--systems",
        "N,C,S,P" if args.peer else "N,C,S",
        "--n",
        str(args.n),
        "--rounds",
        str(args.rounds),
        "--json",
        str(ROOT / "bench-scaling.json"),
    ]
    run.main()


if __name__ == "__main__":
    main()
