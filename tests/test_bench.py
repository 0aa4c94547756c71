"""The benchmark harness (`make bench`): its bookkeeping as pure functions, and its smallest
piece run for real (one setup, N, C, S and S on RabbitMQ, 200 items each: about 20 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.budget import parse_raw, part_of
from bench.systems import Setup
from bench.throughput import Cells, summary, table


def test_setups_parse_into_worker_processes() -> None:
    assert Setup.parse("threads 2x16").worker_options() == [["-P", "threads", "-c", "16"]] * 2
    assert Setup.parse("prefork 4").worker_options() == [["-P", "prefork", "-c", "4"]]
    assert Setup.parse(" threads 3x8 ").label == "threads 3x8"
    with pytest.raises(ValueError, match="threads PxT"):
        Setup.parse("threads 8")


def test_a_profile_sample_goes_to_the_most_specific_part_of_a_delivery() -> None:
    trace = "trace_task (celery/app/trace.py:453)"
    attempt = "attempt (/src/shahihooks/delivery.py:99)"
    loop = "asynloop (celery/worker/loops.py:97)"
    assert part_of([trace, attempt, "begin (shahihooks/state.py:330)", "read (redis/c.py:1)"]) == (
        "shahihooks' Redis steps (begin, finish)"
    )
    assert part_of([trace, attempt, "send (shahihooks/transport.py:80)"]) == "the HTTP request"
    assert part_of([trace, attempt, "sign (shahihooks/signing.py:40)"]) == "signing the body"
    assert part_of([trace, attempt]) == "the rest of the attempt (body, outcome, log)"
    assert part_of([trace, "ack (shahihooks/broker.py:70)"]) == (
        "kombu: taking and acknowledging messages"
    )
    receiving = [loop, "on_readable (kombu/redis.py:1)", "task (celery/worker/strategy.py:9)"]
    assert part_of(receiving) == "Celery: receiving a message"
    assert part_of([loop]) == "Celery: receiving a message"
    assert part_of([trace]) == "Celery: running a task (trace, request, pool)"
    assert part_of(["run (threading.py:1)"]) == "other (threads, loop, logging)"
    raw = f"{trace};{attempt} 3\n{trace};{attempt};sign (shahihooks/signing.py:4) 2\nnoise\n"
    assert parse_raw(raw) == {
        "the rest of the attempt (body, outcome, log)": 3,
        "signing the body": 2,
    }


def test_each_system_best_is_compared_with_the_others_best() -> None:
    setups = [Setup.parse("threads 1x16"), Setup.parse("prefork 2")]
    cells = Cells()
    for setup, n, c, s in (("threads 1x16", 300, 900, 400), ("prefork 2", 500, 1000, 350)):
        cells.add("N", setup, n)
        cells.add("C", setup, c)
        cells.add("S", setup, s)
        cells.add("S", setup, s + 100)  # two rounds: the mean counts
    result = summary(cells, ["N", "C", "S"], setups)
    assert result["best"]["N"] == {"setup": "prefork 2", "rate": 500}
    assert result["best"]["S"] == {"setup": "threads 1x16", "rate": 450}
    assert result["best_vs_best"]["S/N"] == pytest.approx(450 / 500)
    assert result["per_setup"]["threads 1x16"]["S/N"] == pytest.approx(450 / 300)
    assert "best vs best" in table(result, ["N", "C", "S"], setups)


def test_smallest_piece_of_quick_mode_runs_every_baseline_at_the_same_setup(
    tmp_path: Path, repo_root: Path
) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench.run", "--quick", "--only", "throughput"]
    argv += ["--systems", "N,C,S,SR", "--setups", "threads 1x4", "--n", "200", "--json", str(out)]
    done = subprocess.run(argv, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    row = results["throughput"]["per_setup"]["threads 1x4"]
    assert all(row[k] > 0 for k in ("N", "C", "S", "S/N", "S/C", "SR", "SR/S"))  # SR: RabbitMQ
    assert results["throughput"]["failures"] == {}
    assert "best vs best" in done.stdout
