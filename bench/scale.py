"""Scaling: throughput of N, C and S by worker process count, with the same harness as
`make bench` (same receiver, same interleaving); or the state over a Redis Cluster of 1, 2,
3… primaries against one Redis (issue #23, bench/clusterscale.py). For a machine with more
cores:

    python -m bench.scale 1 2 4 8 16 [--threads 16] [--n 20000] [--rounds 2] [--peer]
    python -m bench.scale --cluster 1,2,3 [--threads 16] [--n 5000] [--rounds 1]

Each count P runs as `threads Px<threads>`: P worker processes (one per core is the
measured best here). The receiver is one asyncio process: its ceiling, printed first,
bounds what can be measured. The cluster cells all run at `threads 2x<threads>`. Results
go to bench-scaling.json (the cluster's to bench-cluster-scaling.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import clusterscale, run
from bench.systems import Setup, Unavailable
from bench.world import ROOT, World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("processes", nargs="*", type=int, help="worker process counts")
    parser.add_argument("--cluster", help="numbers of primaries, e.g. 1,2,3")
    parser.add_argument("--threads", type=int, default=16, help="threads per process")
    parser.add_argument("--n", type=int, help="deliveries per cell (20,000; cluster: 5,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (2; cluster: 1)")
    parser.add_argument("--peer", action="store_true", help="django-webhook too")
    parser.add_argument("--json", help="results file")
    args = parser.parse_args()
    if args.cluster:
        masters = [int(m) for m in args.cluster.split(",") if m.strip()]
        out = Path(args.json or ROOT / "bench-cluster-scaling.json")
        cluster(masters, args.n or 5000, args.rounds or 1, args.threads, out)
    elif args.processes:
        processes(args)
    else:
        parser.error("give worker process counts, or --cluster")


def cluster(masters: list[int], n: int, rounds: int, threads: int, out: Path) -> None:
    setup = Setup("threads", 2, threads)
    world = World()
    world.start()
    started = time.monotonic()
    print(
        f"the state over a Redis Cluster of {', '.join(map(str, masters))} primaries and on one "
        f"Redis: about {n:,} deliveries per cell, {setup.label}, RabbitMQ broker, "
        f"{rounds} round(s)"
    )
    try:
        result = clusterscale.measure(world, masters, n, rounds, setup)
    except Unavailable as exc:
        sys.exit(f"not run: {exc}")
    finally:
        world.stop()
    result["command"] = " ".join(["python -m bench.scale", *sys.argv[1:]])
    result["machine"] = run.machine()
    result["seconds"] = time.monotonic() - started
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{result['n']:,} deliveries per cell over {result['endpoints']} endpoints:")
    print(clusterscale.table(result))
    print(f"\nwritten: {out}")


def processes(args: argparse.Namespace) -> None:
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
        str(args.n or 20_000),
        "--rounds",
        str(args.rounds or 2),
        "--json",
        args.json or str(ROOT / "bench-scaling.json"),
    ]
    run.main()


if __name__ == "__main__":
    main()
